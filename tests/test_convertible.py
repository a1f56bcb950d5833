"""GraphConvertible and to_graph (nestgraph.convertible); walking never fills lazy objects."""

from __future__ import annotations

import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph._objects import pending_of

tf1 = tf.compat.v1


class Block(ng.GraphConvertible):
    def __init__(self, x: tf.Tensor, name: str) -> None:
        with tf1.variable_scope(name):
            self.w = tf1.get_variable("w", [2, 2])
            self.out = tf.matmul(x, self.w)


class Net(ng.GraphConvertible):
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 2], name="x")
        self.blocks = [Block(self.x, "b0")]
        self.blocks.append(Block(self.blocks[0].out, "b1"))
        self.first = self.blocks[0]
        self.rate = 0.5


def test_walking_a_rebuilt_model_writes_the_same_spec_without_building_it(
    graph: tf.Graph,
) -> None:
    spec = ng.to_graph(Net())
    rebuilt = ng.from_graph(spec, graph)
    assert pending_of(rebuilt) is not None
    assert ng.to_graph(rebuilt) == spec
    assert pending_of(rebuilt) is not None  # still not filled
    again = ng.to_graph(rebuilt, fields=rebuilt.__dict__)
    assert again == spec and pending_of(rebuilt) is not None
    block = rebuilt.blocks[1]  # touching the model fills it, its blocks stay lazy
    assert pending_of(rebuilt) is None and pending_of(block) is not None
    assert ng.to_graph(rebuilt) == spec and pending_of(block) is not None


def test_from_graph_binds_into_an_existing_instance(graph: tf.Graph) -> None:
    net = Net()
    spec = net.to_graph(fields=["x", "rate"])
    assert list(spec.flatten()) == ["x"]
    empty = Net.__new__(Net)
    assert empty.from_graph(spec, graph) is empty and empty.x is net.x and empty.rate == 0.5


def test_walk_errors_are_walk_errors(graph: tf.Graph) -> None:
    with pytest.raises(ng.WalkError, match="nope: Net object has no field 'nope'"):
        ng.to_graph(Net(), fields=["nope"])
    deep: list[object] = []
    top = deep
    for _ in range(200):
        deep.append([])
        deep = deep[0]  # type: ignore[assignment]
    with pytest.raises(ng.WalkError, match="nesting deeper than 100 levels"):
        ng.to_graph(top)
