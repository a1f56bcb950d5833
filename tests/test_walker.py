"""The walker: what is recorded, in which order, and what is skipped and why."""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph.nodes import (
    MAX_DEPTH,
    DictNode,
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    TupleNode,
    Value,
)
from nestgraph.walker import walk

tf1 = tf.compat.v1
Point = collections.namedtuple("Point", "x y")


class Box(ng.GraphConvertible):
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


@dataclasses.dataclass
class Config:
    depth: int
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlots:
    a: int
    b: float


class Plain:
    def __init__(self) -> None:
        self.x = 1


def test_fields_keep_definition_order() -> None:
    node = walk(Box(zeta=1, alpha=2, mid=3))
    assert isinstance(node, ObjectNode)
    assert list(node.fields) == ["zeta", "alpha", "mid"]
    assert node.class_path == "test_walker:Box"


def test_plain_values_are_values() -> None:
    node = walk(Box(a=None, b=True, c=3, d=2.5, e="text"))
    assert isinstance(node, ObjectNode)
    assert [v for v in node.fields.values()] == [
        Value(None),
        Value(True),
        Value(3),
        Value(2.5),
        Value("text"),
    ]


def test_graph_leaves(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [None, 2], name="x")
    with tf1.variable_scope("enc"):
        w = tf1.get_variable("w", [2, 2])
    y = tf.matmul(x, w, name="y")
    sp = tf.SparseTensor(
        tf1.placeholder(tf.int64, [None, 2], name="i"),
        tf1.placeholder(tf.float32, [None], name="v"),
        tf1.placeholder(tf.int64, [2], name="s"),
    )
    node = walk(Box(x=x, w=w, y=y, op=y.op, sp=sp))
    assert isinstance(node, ObjectNode)
    assert node.fields == {
        "x": Leaf("tensor", ("x:0",)),
        "w": Leaf("variable", ("enc/w:0",)),
        "y": Leaf("tensor", ("y:0",)),
        "op": Leaf("op", ("y",)),
        "sp": Leaf("sparse", ("i:0", "v:0", "s:0")),
    }


def test_containers() -> None:
    node = walk(Box(l=[1, 2], t=(3,), d={"k": 4}, p=Point(5, 6), empty=()))
    assert isinstance(node, ObjectNode)
    f = node.fields
    assert f["l"] == ListNode([Value(1), Value(2)])
    assert f["t"] == TupleNode([Value(3)])
    assert f["d"] == DictNode({"k": Value(4)})
    assert f["p"] == NamedTupleNode("test_walker:Point", {"x": Value(5), "y": Value(6)})
    assert f["empty"] == TupleNode([])


def test_dataclasses_including_frozen_slots() -> None:
    node = walk(Box(c=Config(3, "x"), f=FrozenSlots(1, 2.0)))
    assert isinstance(node, ObjectNode)
    assert node.fields["c"] == ObjectNode(
        "test_walker:Config", {"depth": Value(3), "name": Value("x")}
    )
    assert node.fields["f"] == ObjectNode(
        "test_walker:FrozenSlots", {"a": Value(1), "b": Value(2.0)}
    )


def test_shared_objects_are_refs_and_cycles_terminate() -> None:
    child = Box(v=1)
    root = Box(first=child, again=child, items=[child])
    child.parent = root
    node = walk(root)
    assert isinstance(node, ObjectNode)
    assert isinstance(node.fields["first"], ObjectNode)
    assert node.fields["again"] == Ref(("first",))
    assert node.fields["items"] == ListNode([Ref(("first",))])
    first = node.fields["first"]
    assert isinstance(first, ObjectNode)
    assert first.fields["parent"] == Ref(())


def test_shared_list_is_a_ref_but_empty_tuples_are_not() -> None:
    shared: list[int] = [1]
    node = walk(Box(a=shared, b=shared, c=(), d=()))
    assert isinstance(node, ObjectNode)
    assert node.fields["b"] == Ref(("a",))
    assert node.fields["d"] == TupleNode([])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (object(), "builtins:object is not a graph element"),
        (lambda: 1, "a lambda has no importable name"),
        (np.zeros(300), r"numpy:ndarray float64 \[300\] has 300 elements, more than the 256"),
        ({1: "a"}, "dict with a non-string key 1 \\(int\\)"),
        (collections.OrderedDict(a=1), "collections:OrderedDict derives from the built-in dict"),
        (np.str_("a"), "numpy:str_ scalars are not recorded"),
        (tf.constant(1.0), "eager tensor .* has no graph name"),
    ],
)
def test_unrecordable_values_are_skipped_with_reason(value: Any, reason: str) -> None:
    node = walk(Box(thing=value))
    assert isinstance(node, ObjectNode)
    skipped = node.fields["thing"]
    assert isinstance(skipped, Skipped)
    assert re.search(reason, skipped.reason), skipped.reason


def test_session_is_recorded_as_a_session(graph: tf.Graph) -> None:
    with tf1.Session(graph=graph) as sess:
        spec = ng.to_graph(Box(sess=sess, n=1))
    assert spec.skipped == {}
    assert spec.to_dict()["fields"]["sess"] == "session Session"


def test_registered_and_plain_classes_are_walked_alike() -> None:
    class Local:
        def __init__(self) -> None:
            self.x = 1

    expected = ObjectNode(
        "test_walker:test_registered_and_plain_classes_are_walked_alike.<locals>.Local",
        {"x": Value(1)},
    )
    node = walk(Box(o=Local()))
    assert isinstance(node, ObjectNode)
    assert node.fields["o"] == expected
    ng.register(Local)  # registration changes the rebuild policy, not the walk
    node = walk(Box(o=Local()))
    assert isinstance(node, ObjectNode)
    assert node.fields["o"] == expected


def test_fields_argument_selects_and_orders() -> None:
    model = Box(a=1, b=2, c=3)
    node = walk(model, ["c", "a"])
    assert isinstance(node, ObjectNode)
    assert list(node.fields) == ["c", "a"]
    node = walk(model, model.__dict__)
    assert isinstance(node, ObjectNode)
    assert list(node.fields) == ["a", "b", "c"]


def test_fields_argument_names_missing_field() -> None:
    with pytest.raises(ng.NestgraphError, match="^nope: Box object has no field 'nope'"):
        walk(Box(a=1), ["nope"])


def test_self_reference_through_fields_argument() -> None:
    model = Box(a=1)
    model.me = model
    node = walk(model, ["me"])
    assert isinstance(node, ObjectNode)
    assert node.fields["me"] == Ref(())


def test_too_deep_nesting_names_the_path() -> None:
    value: list[Any] = []
    top = value
    for _ in range(MAX_DEPTH + 5):
        nxt: list[Any] = []
        value.append(nxt)
        value = nxt
    with pytest.raises(ng.NestgraphError, match=r"^(0\.){99}0: nesting deeper than 100"):
        walk(top)


def test_non_object_root() -> None:
    assert walk([1, "a"]) == ListNode([Value(1), Value("a")])
