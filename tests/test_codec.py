"""The dict form (nestgraph._codec): encoding nodes, and a decoder that collects every problem."""

from __future__ import annotations

import pytest

import nestgraph as ng
from nestgraph._codec import decode, encode
from nestgraph.nodes import DictNode, Leaf, ListNode, ObjectNode, Ref, Skipped, TupleNode, Value


def test_every_node_type_encodes_to_its_documented_form() -> None:
    root = ObjectNode(
        "pkg:M",
        {
            "x": Leaf("tensor", ("x:0",)),
            "sp": Leaf("sparse", ("i:0", "v:0", "s:0")),
            "name": Value("hi"),
            "n": Value(None),
            "items": ListNode([Value(1), TupleNode([Value(2.5)])]),
            "d": DictNode({"a.b": Ref(("items",))}),
            "gone": Skipped("a session"),
            "me": Ref(()),
        },
    )
    assert encode(root) == {
        "class": "pkg:M",
        "fields": {
            "x": "tensor x:0",
            "sp": "sparse i:0 v:0 s:0",
            "name": "str hi",
            "n": None,
            "items": [1, {"tuple": [2.5]}],
            "d": {"dict": {"a.b": "ref items"}},
            "gone": "skipped a session",
            "me": "ref .",
        },
    }
    again, _, problems = decode({"nestgraph": 1, **encode(root)})
    assert problems == [] and again == root


def test_decoding_collects_every_problem_with_its_path() -> None:
    data = {
        "nestgraph": 1,
        "class": "pkg:M",
        "fields": {
            "a": "tensor no_index",
            "b": "plain words",
            "c": {"dict": {}, "tuple": []},
            "__class__": 1,
            "_nestgraph_pending": 2,
            "ok": {"dict": {"__dunder__": 3}},  # dict keys are data, not attributes
        },
    }
    _, _, problems = decode(data)
    assert [p.path for p in problems] == ["a", "b", "c", "__class__", "_nestgraph_pending"]
    assert "a tensor name ends in ':N'" in problems[0].message
    assert "a plain string is written 'str plain words'" in problems[1].message
    assert "exactly one of 'class', 'namedtuple', 'dict' or 'tuple'" in problems[2].message
    assert all("is reserved" in p.message for p in problems[3:])


def test_document_level_errors_raise_at_once() -> None:
    with pytest.raises(ng.SpecError, match="not list"):
        decode([1, 2])
    with pytest.raises(ng.SpecError, match="Spec.from_flat"):
        decode({"x": "ExpandDims:0"})
    with pytest.raises(ng.SpecError, match="newer than this nestgraph reads"):
        decode({"nestgraph": 99, "root": None})
