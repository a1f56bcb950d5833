"""Graph lookups (nestgraph._graphindex): elements by kind, closest names, name maps."""

from __future__ import annotations

import pytest
import tensorflow as tf

from nestgraph._graphindex import GraphIndex, NameMap, lookup
from nestgraph.nodes import LookupKind

tf1 = tf.compat.v1


@pytest.fixture
def index(graph: tf.Graph) -> GraphIndex:
    x = tf1.placeholder(tf.float32, [None, 2], name="x")
    with tf1.variable_scope("tower_0"):
        w = tf1.get_variable("w", [2, 2])
        tf.nn.relu(tf.matmul(x, w), name="out")
    return GraphIndex(graph)


def test_each_kind_is_looked_up_as_itself(index: GraphIndex) -> None:
    same = NameMap(None, None)
    assert lookup(index, LookupKind.TENSOR, "x:0", same).element.name == "x:0"
    assert lookup(index, LookupKind.OP, "tower_0/out", same).element.type == "Relu"
    assert lookup(index, LookupKind.VARIABLE, "tower_0/w:0", same).element.name == "tower_0/w:0"


def test_wrong_kind_and_missing_names_say_why(index: GraphIndex) -> None:
    same = NameMap(None, None)
    not_variable = lookup(index, LookupKind.VARIABLE, "x:0", same)
    assert not_variable.element is None and not_variable.closest_kind is None
    assert "bind it as 'tensor x:0' instead" in not_variable.message
    second_output = lookup(index, LookupKind.TENSOR, "x:1", same)
    assert "has 1 output(s), so no 'x:1'" in second_output.message
    missing = lookup(index, LookupKind.TENSOR, "tower_0/outt:0", same)
    assert missing.closest_kind == LookupKind.TENSOR
    assert index.closest(LookupKind.TENSOR, missing.graph_name) == "tower_0/out:0"


def test_closest_prefers_the_same_name_under_another_scope(index: GraphIndex) -> None:
    assert index.closest(LookupKind.VARIABLE, "w:0") == "tower_0/w:0"
    assert index.closest(LookupKind.OP, "imported/tower_0/out") == "tower_0/out"


def test_name_map_rewrites_longest_prefix_then_adds_the_import_scope() -> None:
    names = NameMap("imported", {"tower_": "t_", "tower_0/": "tower_9/"})
    assert names("tower_0/w:0") == "imported/tower_9/w:0"
    assert names("tower_1/w:0") == "imported/t_1/w:0"
    with pytest.raises(TypeError, match="scope_map must be a mapping"):
        NameMap(None, [("a", "b")])  # type: ignore[arg-type]
