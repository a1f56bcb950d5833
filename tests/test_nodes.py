"""The spec tree (nestgraph.nodes): the node table, the one traversal."""

from __future__ import annotations

import pytest

from nestgraph.nodes import (
    NODE_TYPES,
    DictNode,
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    TupleNode,
    Value,
    children,
    describe,
    is_branch,
    iter_nodes,
    rebuild,
)

TREE = ObjectNode(
    "pkg:M",
    {
        "a": ListNode([Value(1), Leaf("tensor", ("x:0",))]),
        "b": DictNode({"k": TupleNode([Ref(("a",))])}),
        "c": NamedTupleNode("pkg:P", {"p": Skipped("why")}),
    },
)


def test_every_node_class_has_a_row() -> None:
    for node in (Value(1), Leaf("op", ("o",)), Ref(()), Skipped("x")):
        assert not is_branch(node) and list(children(node)) == []
        assert rebuild(node, []) is node
    assert set(NODE_TYPES) == {
        Value,
        Leaf,
        Ref,
        Skipped,
        ObjectNode,
        NamedTupleNode,
        ListNode,
        TupleNode,
        DictNode,
    }


def test_describe() -> None:
    assert describe(TREE) == ("object", "pkg:M")
    assert describe(TREE.fields["a"]) == ("list", "2 items")
    assert describe(DictNode({"k": Value(1)})) == ("dict", "1 key")
    assert describe(Leaf("sparse", ("i:0", "v:0", "s:0"))) == ("sparse", "i:0 v:0 s:0")
    assert describe(Leaf("dtype", value="float32")) == ("dtype", "float32")
    assert describe(Value("s")) == ("value", '"s"')
    assert describe(Ref(())) == ("ref", "<root>")
    with pytest.raises(TypeError, match="not a spec node"):
        describe("text")  # type: ignore[arg-type]


def test_rebuild_keeps_the_node_type_and_header() -> None:
    for node in (TREE, TREE.fields["a"], TREE.fields["b"], TREE.fields["c"]):
        assert rebuild(node, list(children(node))) == node


def test_iter_nodes_is_document_order_and_does_not_follow_refs() -> None:
    paths = [path for path, _ in iter_nodes(TREE)]
    assert paths == [
        (),
        ("a",),
        ("a", 0),
        ("a", 1),
        ("b",),
        ("b", "k"),
        ("b", "k", 0),
        ("c",),
        ("c", "p"),
    ]


def test_iter_nodes_handles_very_deep_trees() -> None:
    deep: ListNode = ListNode([])
    top = deep
    for _ in range(5000):
        inner = ListNode([])
        deep.items.append(inner)
        deep = inner
    assert sum(1 for _ in iter_nodes(top)) == 5001
