"""One graph pruned for many seed sets (nestgraph.bundle._pruner).

``Pruner`` must keep exactly what ``prune_meta_graph`` keeps, for any seeds,
whatever a closure starts from: colocations, variables' initializers, v1
control-flow contexts, partitioned variables, signatures and collections of
every kind.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import tensorflow as tf
from hypothesis import given, settings
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph.bundle._metagraph import prune_meta_graph
from nestgraph.bundle._pruner import Pruner

tf1 = tf.compat.v1


def _rich_graph() -> meta_graph_pb2.MetaGraphDef:
    graph = tf.Graph()
    was_v2 = tf1.control_flow_v2_enabled()
    tf1.disable_control_flow_v2()
    try:
        with graph.as_default():
            x = tf1.placeholder(tf.float32, [None, 4], name="x")
            w = tf1.get_variable("w", [4, 4])
            with tf1.variable_scope("emb"):
                table = tf1.get_variable(
                    "table", [10, 4], partitioner=tf1.fixed_size_partitioner(2)
                )
            looked = tf.nn.embedding_lookup(table, tf.constant([1, 7]), name="looked")
            with tf1.colocate_with(w):
                near = tf.identity(w, name="near")
            hidden = tf.matmul(x, near, name="hidden")
            p = tf1.placeholder(tf.bool, [], name="p")
            branch = tf1.cond(p, lambda: hidden * 2.0, lambda: hidden + 1.0, name="branch")
            _, power = tf1.while_loop(
                lambda i, acc: i < 3, lambda i, acc: (i + 1, acc * 2.0), [0, 1.0], name="loop"
            )
            loss = tf.reduce_sum(branch) + tf.reduce_sum(looked) + power
            tf1.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
            tf1.add_to_collection("numbers", 3)
            tf1.add_to_collection("names", "hidden")
            meta_graph = tf1.train.export_meta_graph(graph=graph)
    finally:
        if was_v2:
            tf1.enable_control_flow_v2()
    meta_graph.signature_def["serve"].outputs["y"].name = "hidden:0"
    return meta_graph


@pytest.fixture(scope="module")
def rich() -> tuple[meta_graph_pb2.MetaGraphDef, Pruner, list[str]]:
    meta_graph = _rich_graph()
    names = [node.name for node in meta_graph.graph_def.node]
    return meta_graph, Pruner(meta_graph), names


def _assembled(
    meta_graph: meta_graph_pb2.MetaGraphDef,
    positions: list[int],
    skeleton: meta_graph_pb2.MetaGraphDef,
) -> meta_graph_pb2.MetaGraphDef:
    whole = meta_graph_pb2.MetaGraphDef()
    whole.CopyFrom(skeleton)
    whole.graph_def.node.extend(meta_graph.graph_def.node[i] for i in positions)
    whole.graph_def.library.CopyFrom(meta_graph.graph_def.library)
    if not meta_graph.graph_def.HasField("library"):
        whole.graph_def.ClearField("library")
    return whole


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_skeleton_and_kept_nodes_are_what_prune_keeps(
    rich: tuple[meta_graph_pb2.MetaGraphDef, Pruner, list[str]], data: st.DataObject
) -> None:
    meta_graph, pruner, names = rich
    extra = ["emb/table", "no/such:0", "^train", "hidden:0", "loop/Exit_1:0"]
    seeds = data.draw(st.lists(st.sampled_from(names + extra), max_size=4))
    known_seeds = data.draw(st.lists(st.sampled_from(names), max_size=2))
    known = pruner.kept(known_seeds)
    kept = pruner.kept(seeds, known)
    assert kept == pruner.kept([*seeds, *known_seeds])  # a closure can start from a part's
    positions, skeleton = pruner.skeleton(kept)
    assert [names[i] for i in positions] == [n for n in names if n in kept]
    expected = prune_meta_graph(meta_graph, [*seeds, *known_seeds])
    assert _assembled(meta_graph, positions, skeleton) == expected


def test_the_head_is_left_out_when_asked(
    rich: tuple[meta_graph_pb2.MetaGraphDef, Pruner, list[str]],
) -> None:
    _, pruner, _ = rich
    _, with_head = pruner.skeleton(pruner.kept(["hidden:0"]))
    _, without = pruner.skeleton(pruner.kept(["hidden:0"]), head=False)
    assert with_head.HasField("meta_info_def") and not without.HasField("meta_info_def")
    assert list(with_head.signature_def) == ["serve"]


def test_a_partitioned_variable_name_stands_for_its_parts(
    rich: tuple[meta_graph_pb2.MetaGraphDef, Pruner, list[str]],
) -> None:
    _, pruner, _ = rich
    kept = pruner.kept(["emb/table"])
    assert {"emb/table/part_0", "emb/table/part_1"} <= kept
