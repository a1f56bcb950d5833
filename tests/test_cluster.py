"""Models trained on a TensorFlow cluster (issue 10), on real gRPC servers on loopback.

Two driver runs (``tests/_cluster.py``) are shared by the tests: ``train`` (2 ps
tasks and a worker in other processes, the driver only a client: train, save,
dumps, export, load back onto the cluster from bytes, save with a ps task
killed) and ``resume`` (the bundle onto 3 ps tasks in the driver's own process,
trained further and saved again). The single-machine side runs here, in the
test process, which has never seen the cluster.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.ops.variables import PartitionedVariable

import nestgraph as ng
from nestgraph.bundle import _devices
from tests import _cluster

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("cluster")
    train = _cluster.run_driver("train", str(out))
    resume = _cluster.run_driver("resume", str(out))
    return {"dir": out, "train": train, "resume": resume}


def _load(path: Path, **kwargs: Any) -> tuple[Any, Any]:
    return ng.load(str(path), **kwargs)


def _placements(session: Any) -> set[str]:
    return {op.device for op in session.graph.get_operations()}


# --------------------------------------------------------------------------- saving from a cluster


def test_bundle_saved_from_remote_ps_tasks_is_bit_identical_on_one_machine(runs: Any) -> None:
    saved = runs["train"]["saved"]
    assert saved["step"] == 3
    assert {d for d in runs["train"]["saved_devices"]} == {"/job:ps/task:0", "/job:ps/task:1"}

    model, session = _load(runs["dir"] / "model.ng", clear_devices=True)
    with session:
        assert not any("/job:" in device for device in _placements(session))
        assert _cluster.snapshot(session, model) == saved


def test_dumps_from_a_cluster_holds_the_weights(runs: Any) -> None:
    data = (runs["dir"] / "dumped.ng").read_bytes()
    model, session = ng.loads(data, clear_devices=True)
    with session:
        assert _cluster.snapshot(session, model) == runs["train"]["saved"]


def test_export_from_a_cluster_is_a_standalone_single_machine_bundle(runs: Any) -> None:
    embedder, session = _load(runs["dir"] / "embedder.ng")  # no device arguments needed
    with session:
        assert isinstance(embedder.table, PartitionedVariable)
        values = np.concatenate(session.run(list(embedder.table)), axis=0)
        assert values.tolist() == runs["train"]["saved"]["table"]
        assert not any(name.startswith("w") for name in _op_names(session))


def test_load_onto_the_cluster_from_bytes_keeps_devices_and_trains(runs: Any) -> None:
    # The restore ran on a worker in another process: it cannot see the client's ram://.
    train = runs["train"]
    assert train["reloaded"] == train["saved"]
    assert train["reloaded_devices"] == train["saved_devices"]
    assert train["reloaded_trained_step"] == train["saved"]["step"] + 1


def test_save_with_a_dead_ps_task_is_a_bundle_error_and_writes_nothing(runs: Any) -> None:
    dead = runs["train"]["dead_ps_save"]
    assert dead["error"] is not None
    assert dead["error"].startswith("BundleError: cannot read the variables' values")
    assert not dead["exists"]
    assert dead["files"] == ["dumped.ng", "embedder.ng", "model.ng"]  # no staging debris


def test_client_side_save_refuses_other_saveables(graph: tf.Graph) -> None:
    with tf.device("/job:ps/task:0"):
        tf1.get_variable("v", [2])
    table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=-1)
    assert graph.get_collection(tf1.GraphKeys.SAVEABLE_OBJECTS), table
    session = tf1.Session(graph=graph)
    with session, pytest.raises(ng.BundleError, match="supports variables only.*SAVEABLE_OBJECTS"):
        ng.dumps(None, session, spec=ng.Spec.from_flat({"v": "v:0"}, graph))


# --------------------------------------------------------------------------- loading elsewhere


def test_resume_on_three_ps_tasks_continues_training(runs: Any) -> None:
    resume, saved = runs["resume"], runs["train"]["saved"]
    assert set(resume["devices"]) == {"/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:2"}
    assert resume["before"] == saved
    assert resume["after"]["step"] == saved["step"] + 3
    assert resume["after"]["loss"] < resume["before"]["loss"]

    # Saved again from that cluster, its ps tasks in the driver's own process.
    model, session = _load(runs["dir"] / "resumed.ng", clear_devices=True)
    with session:
        assert _cluster.snapshot(session, model) == resume["after"]


def test_load_onto_a_cluster_feeds_values_in_chunks(runs: Any) -> None:
    assert runs["resume"]["chunked"] == runs["train"]["saved"]
    # Two 320-byte embedding parts alone, then w and the step together.
    assert runs["resume"]["chunk_sizes"] == [1, 1, 2]


def test_subtree_load_onto_another_cluster_shape(runs: Any) -> None:
    resume = runs["resume"]
    assert resume["subtree_devices"] == ["/job:ps/task:0", "/job:ps/task:1"]
    assert resume["subtree_table"] == runs["train"]["saved"]["table"]


def test_default_load_of_a_cluster_bundle_on_one_machine_says_what_to_do(runs: Any) -> None:
    path = runs["dir"] / "model.ng"
    with pytest.raises(ng.BundleError, match=r"clear_devices=True.*device_fn") as caught:
        _load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "on '/job:" in message
    assert "a local session has only /job:localhost/replica:0/task:0" in message


def test_device_string_places_the_whole_graph(runs: Any) -> None:
    device = "/job:localhost/replica:0/task:0/device:CPU:0"
    model, session = _load(runs["dir"] / "model.ng", device_fn=device)
    with session:
        assert _placements(session) == {device}
        assert _cluster.snapshot(session, model) == runs["train"]["saved"]


@pytest.mark.parametrize("bad", [3, ["/job:ps"], b"/cpu:0"])
def test_a_device_fn_that_is_neither_string_nor_callable_is_refused(runs: Any, bad: Any) -> None:
    data = (runs["dir"] / "dumped.ng").read_bytes()
    with pytest.raises(TypeError, match=r"device_fn must be a device string .* not "):
        _load(runs["dir"] / "model.ng", device_fn=bad)
    with pytest.raises(TypeError, match=r"device_fn must be"):
        ng.loads(data, device_fn=bad)


def test_subtree_load_of_a_partitioned_embedding(runs: Any) -> None:
    embedder, session = _load(runs["dir"] / "model.ng", subtree="embedder", clear_devices=True)
    with session:
        table = embedder.table
        assert isinstance(table, PartitionedVariable)
        assert len(list(table)) == 2
        assert table.get_shape().as_list() == [_cluster.VOCAB, _cluster.DIM]
        values = np.concatenate(session.run(list(table)), axis=0)
        assert values.tolist() == runs["train"]["saved"]["table"]
        assert "w" not in _op_names(session) and "train" not in _op_names(session)


def _op_names(session: Any) -> set[str]:
    return {op.name for op in session.graph.get_operations()}


def test_dead_target_fails_within_the_operation_timeout(runs: Any) -> None:
    (port,) = _cluster.free_ports(1)
    started = time.monotonic()
    with pytest.raises(ng.BundleError, match=r"did not answer within 1500 ms"):
        _load(
            runs["dir"] / "model.ng",
            target=f"grpc://localhost:{port}",
            config=tf1.ConfigProto(operation_timeout_in_ms=1500),
        )
    assert time.monotonic() - started < 15


# --------------------------------------------------------------------------- partitions


def _local_model(partitions: int) -> tuple[tf.Graph, Any]:
    graph = tf.Graph()
    with graph.as_default():
        model = _cluster.ClusterModel(partitions=partitions)
    return graph, model


def test_cluster_checkpoint_restores_into_another_partition_count(
    runs: Any, tmp_path: Path
) -> None:
    with zipfile.ZipFile(runs["dir"] / "model.ng") as bundle:
        bundle.extractall(tmp_path)
    prefix = str(tmp_path / "checkpoint" / "model")
    assert dict(tf.train.list_variables(prefix))["emb"] == [_cluster.VOCAB, _cluster.DIM]

    graph, model = _local_model(partitions=5)
    with graph.as_default(), tf1.Session(graph=graph) as session:
        tf1.train.Saver().restore(session, prefix)  # TensorFlow's own, slices of one key
        assert _cluster.snapshot(session, model) == runs["train"]["saved"]


def test_partitioned_bundle_round_trip_and_into_another_partition_count(tmp_path: Path) -> None:
    graph, model = _local_model(partitions=3)
    with graph.as_default(), tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        _cluster.train(session, model, steps=2)
        before = _cluster.snapshot(session, model)
        ng.save(model, session, str(tmp_path / "three.ng"))

    again, session = _load(tmp_path / "three.ng")
    with session:
        assert len(list(again.embedder.table)) == 3
        assert _cluster.snapshot(session, again) == before

    with zipfile.ZipFile(tmp_path / "three.ng") as bundle:
        bundle.extractall(tmp_path / "unzipped")
    graph, model = _local_model(partitions=2)
    with graph.as_default(), tf1.Session(graph=graph) as session:
        tf1.train.Saver().restore(session, str(tmp_path / "unzipped" / "checkpoint" / "model"))
        assert _cluster.snapshot(session, model) == before


# --------------------------------------------------------------------------- placement rules


def _specs(*names: str) -> list[Any]:
    return [tf.DeviceSpec.from_string(name) for name in names]


def test_placements_are_checked_against_the_targets_tasks() -> None:
    offered = _specs(
        "/job:ps/replica:0/task:0/device:CPU:0", "/job:worker/replica:0/task:0/device:CPU:0"
    )
    _devices.check_placements({"/job:ps/task:0": "v", "/job:worker": "x"}, offered, None, "b.ng")
    with pytest.raises(
        ng.BundleError,
        match=r"b.ng: .*op 'v' on '/job:ps/task:1'.*has /job:ps/task:0, /job:worker/task:0\); "
        r"pass clear_devices=True",
    ):
        _devices.check_placements({"/job:ps/task:1": "v"}, offered, None, "b.ng")


def test_device_type_counts_only_without_soft_placement() -> None:
    offered = _specs("/job:worker/replica:0/task:0/device:CPU:0")
    placed = {"/job:worker/task:0/device:GPU:0": "matmul"}
    _devices.check_placements(placed, offered, tf1.ConfigProto(allow_soft_placement=True), "b")
    with pytest.raises(ng.BundleError, match=r"op 'matmul' on '/job:worker/task:0/device:GPU:0'"):
        _devices.check_placements(placed, offered, tf1.ConfigProto(), "b")


def test_a_local_session_has_one_task() -> None:
    _devices.check_placements(
        {"/job:localhost/replica:0/task:0/device:CPU:0": "a", "/device:GPU:0": "b"}, None, None, "f"
    )
    with pytest.raises(ng.BundleError, match=r"a local session has only"):
        _devices.check_placements({"/job:localhost/task:1": "a"}, None, None, "f")


def test_clear_drops_placements_in_function_bodies_too(graph: tf.Graph) -> None:
    @tf.function
    def double(x: Any) -> Any:
        with tf.device("/job:ps/task:0"):
            return x * 2.0

    with tf.device("/job:ps/task:1"):
        double(tf.constant(1.0))
    meta_graph = tf1.train.export_meta_graph(graph=graph)
    assert any(n.device for f in meta_graph.graph_def.library.function for n in f.node_def)

    _devices.clear(meta_graph)

    assert not any(node.device for node in meta_graph.graph_def.node)
    assert not any(n.device for f in meta_graph.graph_def.library.function for n in f.node_def)


class _ClusterLike:
    """A local session that says it runs on a cluster target, so saves go through the client."""

    sess_str = "grpc://pretend:1"

    def __init__(self, session: Any) -> None:
        self._session = session
        self.graph = session.graph

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.run(*args, **kwargs)


def test_client_side_save_in_chunks_merges_one_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nestgraph.bundle import _remote

    monkeypatch.setattr(_remote, "CHUNK_BYTES", 200)  # each embedding part (~213 bytes) alone
    graph, model = _local_model(partitions=3)
    with graph.as_default(), tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        _cluster.train(session, model, steps=2)
        before = _cluster.snapshot(session, model)
        parts = [part for _, _, part in _remote._keyed(tf1.global_variables())]
        chunks = _remote._chunks(parts, [_remote._nbytes(p) for p in parts], _remote.CHUNK_BYTES)
        assert len(chunks) >= 4
        data = ng.dumps(model, _ClusterLike(session))

    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = bundle.namelist()
        bundle.extractall(tmp_path)
    shards = [n for n in names if n.startswith("checkpoint/model.data-")]
    assert len(shards) == len(chunks)
    assert not any("temp" in name for name in names)
    again, session = ng.loads(data)
    with session:
        assert _cluster.snapshot(session, again) == before
    graph, model = _local_model(partitions=2)
    with graph.as_default(), tf1.Session(graph=graph) as session:
        tf1.train.Saver().restore(session, str(tmp_path / "checkpoint" / "model"))
        assert _cluster.snapshot(session, model) == before
