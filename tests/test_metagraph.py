"""Pruning a MetaGraphDef to what a few nodes need (nestgraph.bundle._metagraph)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph.bundle._metagraph import (
    node_name,
    prune_meta_graph,
    replace_graph_def,
    required_nodes,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._models import build_tower_model

tf1 = tf.compat.v1


def _export(graph: tf.Graph) -> meta_graph_pb2.MetaGraphDef:
    with graph.as_default():
        return tf1.train.export_meta_graph(graph=graph)


def _names(meta_graph: meta_graph_pb2.MetaGraphDef) -> set[str]:
    return {node.name for node in meta_graph.graph_def.node}


def _import(meta_graph: meta_graph_pb2.MetaGraphDef) -> tf.Graph:
    """Import into a fresh graph, as a sub-network load does."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.train.import_meta_graph(meta_graph)
    return graph


def _variable_names(meta_graph: meta_graph_pb2.MetaGraphDef, key: str) -> list[str]:
    names = []
    for raw in meta_graph.collection_def[key].bytes_list.value:
        variable_def = variable_pb2.VariableDef()
        variable_def.ParseFromString(raw)
        names.append(variable_def.variable_name)
    return names


@contextlib.contextmanager
def _v1_control_flow() -> Iterator[None]:
    """tf.cond / tf.while_loop with context collections, as TF1 graphs have them."""
    was_v2 = tf1.control_flow_v2_enabled()
    tf1.disable_control_flow_v2()
    try:
        yield
    finally:
        if was_v2:
            tf1.enable_control_flow_v2()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("^train/Adam", "train/Adam"), ("tower_0/Relu:0", "tower_0/Relu"), ("w", "w"), ("a:b", "a:b")],
)
def test_node_name_strips_control_marker_and_output_index(ref: str, expected: str) -> None:
    assert node_name(ref) == expected


def test_keeps_data_and_control_inputs_only(graph: tf.Graph) -> None:
    a = tf.constant(1.0, name="a")
    b = tf.identity(a, name="b")
    d = tf.constant(2.0, name="d")
    with tf.control_dependencies([d]):
        tf.identity(b, name="c")
    tf.constant(3.0, name="unrelated")

    pruned = prune_meta_graph(_export(graph), ["c:0"])

    assert _names(pruned) == {"a", "b", "c", "d"}
    assert prune_meta_graph(_export(graph), ["^b"]).graph_def.node[-1].name == "b"


def test_unknown_seed_is_ignored(graph: tf.Graph) -> None:
    tf.constant(1.0, name="a")
    assert _names(prune_meta_graph(_export(graph), ["a:0", "no/such:0"])) == {"a"}


@pytest.mark.parametrize("use_resource", [True, False], ids=["resource", "ref"])
def test_keeps_what_a_variable_def_names(graph: tf.Graph, use_resource: bool) -> None:
    x = tf1.placeholder(tf.float32, [None, 2], name="x")
    w = tf1.get_variable("w", [2, 2], use_resource=use_resource)
    tf1.get_variable("unused", [3], use_resource=use_resource)
    y = tf.matmul(x, w, name="y")

    meta_graph = _export(graph)
    pruned = prune_meta_graph(meta_graph, [y.name])

    variable_def = w.to_proto()
    kept = _names(pruned)
    for name in (
        variable_def.variable_name,
        variable_def.initializer_name,
        variable_def.snapshot_name,
        variable_def.initial_value_name,
    ):
        assert node_name(name) in kept
    assert not any(name.startswith("unused") for name in kept)
    assert _variable_names(pruned, "variables") == ["w:0"]
    assert _variable_names(pruned, "trainable_variables") == ["w:0"]

    imported = _import(pruned)
    with imported.as_default(), tf1.Session(graph=imported) as session:
        (variable,) = tf1.global_variables()
        assert variable.name == "w:0"
        session.run(variable.initializer)
        out = session.run("y:0", {"x:0": np.ones((1, 2), np.float32)})
        assert out.shape == (1, 2)


def test_variable_initialized_from_another_keeps_both(graph: tf.Graph) -> None:
    # Only ref variables have initialized_value(), TF1's way to chain initializers.
    base = tf1.get_variable("base", [2], use_resource=False)
    derived = tf1.Variable(base.initialized_value() * 2.0, name="derived", use_resource=False)
    tf1.get_variable("other", [2])

    pruned = prune_meta_graph(_export(graph), [derived.name])

    assert sorted(_variable_names(pruned, "variables")) == ["base:0", "derived:0"]
    imported = _import(pruned)
    with imported.as_default(), tf1.Session(graph=imported) as session:
        # One after the other: run together, the two initializers race.
        for name in ("base", "derived"):
            session.run(imported.get_operation_by_name(f"{name}/Assign"))
        base_value, derived_value = session.run(["base:0", "derived:0"])
        np.testing.assert_allclose(derived_value, 2.0 * base_value)


def test_keeps_colocation_targets(graph: tf.Graph) -> None:
    anchor = tf.constant(1.0, name="anchor")
    with tf1.colocate_with(anchor.op):
        tf.constant(2.0, name="colocated")

    pruned = prune_meta_graph(_export(graph), ["colocated:0"])

    assert _names(pruned) == {"anchor", "colocated"}
    # The importer refuses a colocation with a node that is not in the graph.
    imported = _import(pruned)
    assert imported.get_operation_by_name("colocated").colocation_groups() == [b"loc:@anchor"]


def test_filters_node_lists_and_drops_empty_collections(graph: tf.Graph) -> None:
    kept = tf.constant(1.0, name="kept")
    dropped = tf.constant(2.0, name="dropped")
    tf1.add_to_collection("mine", kept)
    tf1.add_to_collection("mine", dropped)
    tf1.add_to_collection("only_dropped", dropped.op)
    tf1.add_to_collection("numbers", 7)
    tf1.add_to_collection(tf1.GraphKeys.TRAIN_OP, dropped.op)

    pruned = prune_meta_graph(_export(graph), ["kept:0"])

    assert list(pruned.collection_def["mine"].node_list.value) == ["kept:0"]
    assert "only_dropped" not in pruned.collection_def
    assert tf1.GraphKeys.TRAIN_OP not in pruned.collection_def
    assert list(pruned.collection_def["numbers"].int64_list.value) == [7]
    imported = _import(pruned)
    assert [t.name for t in imported.get_collection("mine")] == ["kept:0"]


def test_opaque_bytes_collections_are_kept(graph: tf.Graph) -> None:
    tf.constant(1.0, name="a")
    meta_graph = _export(graph)
    meta_graph.collection_def["blobs"].bytes_list.value.append(b"\x00opaque")

    pruned = prune_meta_graph(meta_graph, ["a:0"])

    assert list(pruned.collection_def["blobs"].bytes_list.value) == [b"\x00opaque"]


def test_drops_saver_def_savers_and_save_ops(graph: tf.Graph) -> None:
    variable = tf1.get_variable("v", [2])
    saver = tf1.train.Saver()
    tf1.add_to_collection(tf1.GraphKeys.SAVERS, saver)
    meta_graph = _export(graph)
    with graph.as_default():
        meta_graph = tf1.train.export_meta_graph(graph=graph, saver_def=saver.as_saver_def())
    assert meta_graph.HasField("saver_def") and "savers" in meta_graph.collection_def

    pruned = prune_meta_graph(meta_graph, [variable.name])

    assert not pruned.HasField("saver_def")
    assert tf1.GraphKeys.SAVERS not in pruned.collection_def
    assert not any(name.startswith("save/") for name in _names(pruned))


def test_while_context_is_kept_whole(graph: tf.Graph) -> None:
    with _v1_control_flow():
        x = tf1.placeholder(tf.float32, [], name="x")

        def body(i: tf.Tensor, acc: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # Not an input of the loop's outputs, but listed in its context.
            tf.identity(acc, name="side")
            return i + 1, acc * x

        _, power = tf1.while_loop(lambda i, acc: i < 3, body, [tf.constant(0), tf.constant(1.0)])
        tf1.while_loop(lambda j: j < 5, lambda j: j + 1, [tf.constant(0)], name="other")
        meta_graph = _export(graph)

        pruned = prune_meta_graph(meta_graph, [power.name])

        kept = _names(pruned)
        assert "while/side" in kept
        assert not any(name.startswith("other/") for name in kept)
        assert len(meta_graph.collection_def["while_context"].bytes_list.value) == 2
        assert len(pruned.collection_def["while_context"].bytes_list.value) == 1

        imported = _import(pruned)
        with imported.as_default():
            # Gradients through a TF1 loop need its context to have been rebuilt.
            (grad,) = tf.gradients(
                imported.get_tensor_by_name(power.name), imported.get_tensor_by_name("x:0")
            )
            with tf1.Session(graph=imported) as session:
                value, slope = session.run([power.name, grad], {"x:0": 2.0})
    assert (value, slope) == (8.0, 12.0)


def test_cond_context_is_kept(graph: tf.Graph) -> None:
    with _v1_control_flow():
        p = tf1.placeholder(tf.bool, [], name="p")
        a = tf.constant(3.0, name="a")
        out = tf1.cond(p, lambda: a * 2.0, lambda: a + 1.0)
        meta_graph = _export(graph)
        assert len(meta_graph.collection_def["cond_context"].bytes_list.value) == 2

        pruned = prune_meta_graph(meta_graph, [out.name])

        assert len(pruned.collection_def["cond_context"].bytes_list.value) == 2
        imported = _import(pruned)
        with tf1.Session(graph=imported) as session:
            assert session.run(out.name, {"p:0": True}) == 6.0
            assert session.run(out.name, {"p:0": False}) == 4.0


def test_signatures_and_assets_follow_their_tensors(graph: tf.Graph) -> None:
    tf.constant(1.0, name="kept")
    tf.constant(2.0, name="dropped")
    meta_graph = _export(graph)
    meta_graph.signature_def["good"].outputs["y"].name = "kept:0"
    meta_graph.signature_def["bad"].outputs["y"].name = "dropped:0"
    meta_graph.asset_file_def.add(filename="vocab.txt").tensor_info.name = "dropped:0"

    pruned = prune_meta_graph(meta_graph, ["kept:0"])

    assert list(pruned.signature_def) == ["good"]
    assert len(pruned.asset_file_def) == 0


def test_replace_graph_def_drops_entries_of_vanished_nodes(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [None, 2], name="x")
    w = tf1.get_variable("w", [2, 2])
    y = tf.matmul(x, w, name="y")
    tf1.add_to_collection("outputs", y)
    meta_graph = _export(graph)
    with tf1.Session(graph=graph) as session:
        session.run(w.initializer)
        frozen_graph_def = tf1.graph_util.convert_variables_to_constants(
            session, graph.as_graph_def(), ["y"]
        )

    frozen = replace_graph_def(meta_graph, frozen_graph_def)

    assert "variables" not in frozen.collection_def
    assert "trainable_variables" not in frozen.collection_def
    assert list(frozen.collection_def["outputs"].node_list.value) == ["y:0"]
    imported = _import(frozen)
    with tf1.Session(graph=imported) as session:
        assert session.run("y:0", {"x:0": np.ones((1, 2), np.float32)}).shape == (1, 2)


def test_one_tower_of_the_benchmark_model_is_a_small_fraction(graph: tf.Graph) -> None:
    model = build_tower_model(towers=6, layers=2, width=4)
    meta_graph = _export(graph)
    tower = model.towers[4]
    seeds = [tower.out.name, tower.loss.name] + [
        element.name for layer in tower.layers for element in (layer.w, layer.b, layer.out)
    ]

    kept = required_nodes(meta_graph, seeds)

    assert len(kept) * 8 < len(meta_graph.graph_def.node)
    assert all(name.startswith("tower_4/") or name in ("x", "y") for name in kept)
    assert not any("Adam" in name for name in kept)
    pruned = prune_meta_graph(meta_graph, seeds)
    assert len(_variable_names(pruned, "variables")) == 4
    assert "train_op" not in pruned.collection_def
    assert "global_step" not in pruned.collection_def


@pytest.mark.parametrize("use_resource", [True, False])
def test_variable_defs_name_the_same_nodes_read_either_way(
    graph: tf.Graph, use_resource: bool
) -> None:
    from nestgraph.bundle._metagraph import _variable_def_refs, node_refs

    w = tf1.get_variable("w", [2, 2], use_resource=use_resource)
    tf1.get_variable("v", [2], initializer=tf1.constant_initializer(1.0), use_resource=use_resource)
    tf1.get_variable(
        "p", [4, 2], partitioner=tf1.fixed_size_partitioner(2), use_resource=use_resource
    )
    tf1.train.AdamOptimizer().minimize(tf.reduce_sum(w))
    meta_graph = _export(graph)
    nodes = _names(meta_graph)
    raws = meta_graph.collection_def["variables"].bytes_list.value
    assert len(raws) >= 6
    for raw in raws:
        proto = variable_pb2.VariableDef.FromString(raw)
        assert sorted(_variable_def_refs(proto, nodes)) == sorted(node_refs(proto, nodes))


def test_without_saver_drops_only_the_savers_own_ops(graph: tf.Graph) -> None:
    from nestgraph.bundle._metagraph import without_saver

    w = tf1.get_variable("w", [2], initializer=tf1.ones_initializer())
    saver = tf1.train.Saver(sharded=True)
    tf.add(w, 1.0, name="save/user")  # the user's own op in the saver's scope
    meta_graph = _export(graph)
    meta_graph.saver_def.CopyFrom(saver.as_saver_def())

    lean = without_saver(meta_graph)

    names = _names(lean)
    assert {"w", "save/user"} <= names
    assert saver.as_saver_def().restore_op_name not in names
    assert not any(
        n.op in ("SaveV2", "RestoreV2", "MergeV2Checkpoints") for n in lean.graph_def.node
    )
    assert not lean.HasField("saver_def")
    assert _names(meta_graph) > names  # the input is not modified
    imported = _import(lean)
    assert [v.op.name for v in imported.get_collection("variables")] == ["w"]


def test_partitioned_variable_seed_keeps_all_its_parts(graph: tf.Graph) -> None:
    ids = tf1.placeholder(tf.int32, [None], name="ids")
    emb = tf1.get_variable(
        "emb", [7, 3], partitioner=tf1.fixed_size_partitioner(3), use_resource=False
    )
    tf1.get_variable("other", [7, 3], partitioner=tf1.fixed_size_partitioner(2))
    tf.nn.embedding_lookup(emb, ids, name="lookup")
    meta_graph = _export(graph)
    assert "emb" not in _names(meta_graph)  # the seed is no node: only its parts are

    pruned = prune_meta_graph(meta_graph, ["emb"])

    parts = [v.name for v in emb]
    assert sorted(_variable_names(pruned, "variables")) == sorted(parts)
    assert not any(name.startswith("other") for name in _names(pruned))
    imported = _import(pruned)
    with imported.as_default():
        rebuilt = tf1.global_variables()
    assert sorted(v.name for v in rebuilt) == sorted(parts)
    assert {v._save_slice_info.full_name for v in rebuilt} == {"emb"}
