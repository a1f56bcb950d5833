"""Restoring a bundle runs only what nestgraph builds, and checks what it restores.

Each hostile bundle here carries a valid manifest (checksums recomputed after
the edit), so only the restore path's own checks stand between it and a
``session.run``. Also: the checkpoint index reader and writer
(``_tensorbundle``), the streamed container (``_zipstream``) and the view a
load restores from.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from conftest import bundle_members, edit_graph, sealed
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.protobuf import tensor_bundle_pb2

import nestgraph as ng
from nestgraph.bundle import _restore, _tensorbundle, dumps, load, loads, save

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._models import build_tower_model, single_thread_config  # noqa: E402

tf1 = tf.compat.v1
ALLOW = ["benchmarks._models.*"]


def _build(towers: int = 2, width: int = 4) -> tuple[Any, Any]:
    graph = tf.Graph()
    with graph.as_default():
        model = build_tower_model(towers=towers, layers=1, width=width)
        session = tf1.Session(graph=graph, config=single_thread_config())
        session.run(tf1.global_variables_initializer())
    return model, session


def _write_file_nodes(target: Path, name: str = "evil") -> list[Any]:
    """The NodeDefs of ``tf.io.write_file(target, "pwned")``, named ``name``."""
    scratch = tf.Graph()
    with scratch.as_default():
        tf.io.write_file(str(target), "pwned", name=name)
    return list(scratch.as_graph_def().node)


@pytest.fixture
def bundle() -> bytes:
    model, session = _build()
    data = dumps(model, session)
    session.close()
    return data


# --------------------------------------------------------------------------- hostile graphs


def test_a_restore_op_name_that_writes_a_file_is_never_run(bundle: bytes, tmp_path: Path) -> None:
    target = tmp_path / "pwned"

    def hijack(meta_graph: Any) -> None:
        meta_graph.graph_def.node.extend(_write_file_nodes(target))
        meta_graph.saver_def.restore_op_name = "evil"
        meta_graph.saver_def.save_tensor_name = "evil/contents:0"

    hostile = edit_graph(bundle, hijack)
    (tmp_path / "hostile.ng").write_bytes(hostile)

    for model, session in (loads(hostile, allow=ALLOW), load(tmp_path / "hostile.ng", allow=ALLOW)):
        assert session.run(model.global_step) == 0
        # A later save of the loaded graph uses nestgraph's own saver, not the bundle's.
        dumps(model, session)
        session.close()
    assert not target.exists()


def test_a_variable_wired_to_a_file_write_is_refused_before_anything_runs(
    bundle: bytes, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"

    def wire(meta_graph: Any) -> None:
        meta_graph.graph_def.node.extend(_write_file_nodes(target))
        (variable,) = [n for n in meta_graph.graph_def.node if n.name == "tower_1/layer_0/w"]
        variable.input.append("^evil")

    hostile = edit_graph(bundle, wire)
    with pytest.raises(
        ng.BundleError,
        match=r"<bytes>: restoring the checkpoint: would run op 'evil' of type WriteFile",
    ):
        loads(hostile, allow=ALLOW, trusted=True)  # even trusted: a load never runs it
    # The other tower does not reach the hostile op, so it loads.
    tower, session = loads(hostile, subtree="towers.0", allow=ALLOW)
    assert session.run(tower.layers[0].w).shape == (4, 4)
    session.close()
    assert not target.exists()


def test_local_variables_start_only_from_allowed_initial_values(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    model, session = _build()
    with session.graph.as_default():
        leak = tf1.Variable(
            tf.io.read_file(str(secret)), name="leak", collections=[tf1.GraphKeys.LOCAL_VARIABLES]
        )
    spec = ng.to_graph({"tower": model.towers[0], "leak": leak})
    save(None, session, tmp_path / "m.ng", spec=spec)

    with pytest.raises(
        ng.BundleError,
        match=r"m\.ng: leak: local variable 'leak': would run op 'ReadFile' of type ReadFile",
    ) as caught:
        load(tmp_path / "m.ng", allow=ALLOW, trusted=True)  # even trusted: the load never runs it
    assert caught.value.path is None or caught.value.path == "leak"


def test_function_bodies_are_checked_too(tmp_path: Path) -> None:
    target = tmp_path / "pwned"

    @tf.function
    def counter() -> Any:
        tf.io.write_file(str(target), "pwned")
        return tf.constant(0.0)

    _, session = _build()
    with session.graph.as_default():
        count = tf1.Variable(counter(), name="count", collections=[tf1.GraphKeys.LOCAL_VARIABLES])
    save(None, session, tmp_path / "m.ng", spec=ng.to_graph({"count": count}))

    with pytest.raises(ng.BundleError, match=r"of type WriteFile inside function '__inference"):
        load(tmp_path / "m.ng", allow=ALLOW, trusted=True)
    with pytest.raises(ng.BundleError, match=r"refused: bound fields reach 1 op"):
        load(tmp_path / "m.ng", allow=ALLOW)  # not trusted: the scan refuses it first
    assert not target.exists()


def test_every_run_of_a_load_has_a_timeout(bundle: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    timeouts = []
    real_run = tf1.Session.run

    def recording_run(self: Any, fetches: Any, *args: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs["options"].timeout_in_ms if kwargs.get("options") else None)
        return real_run(self, fetches, *args, **kwargs)

    monkeypatch.setattr(tf1.Session, "run", recording_run)
    _, session = loads(bundle, allow=ALLOW)
    monkeypatch.undo()
    assert timeouts == [_restore.OPERATION_TIMEOUT_MS]
    session.close()


# --------------------------------------------------------------------------- graph agrees


def _swap_checkpoint(graph_source: bytes, checkpoint_source: bytes) -> bytes:
    weights = dict(bundle_members(checkpoint_source))
    return sealed(
        [
            (n, weights[n] if n.startswith("checkpoint/") else d)
            for n, d in bundle_members(graph_source)
        ]
    )


def test_a_checkpoint_of_another_shape_is_refused_naming_the_path(tmp_path: Path) -> None:
    model, session = _build(width=4)
    wider, wider_session = _build(width=6)
    hostile = _swap_checkpoint(dumps(model, session), dumps(wider, wider_session))

    with pytest.raises(
        ng.BundleError,
        match=r"<bytes>: checkpoint and graph disagree: towers\.0\.layers\.0\.w: variable "
        r"'tower_0/layer_0/w' is float32 \(4, 4\) in the graph but float32 \(6, 6\) in the "
        r"checkpoint",
    ) as caught:
        loads(hostile, allow=ALLOW)
    assert caught.value.path == "towers.0.layers.0.w"
    # Unbound variables (optimizer slots) are named by their variable name.
    assert "variable 'tower_0/layer_0/w/Adam' is float32 (4, 4)" in str(caught.value)


def test_a_checkpoint_of_another_dtype_is_refused(tmp_path: Path) -> None:
    def build(dtype: Any) -> bytes:
        graph = tf.Graph()
        with graph.as_default():
            w = tf1.get_variable("w", [2], dtype=dtype, initializer=tf1.zeros_initializer())
            with tf1.Session(graph=graph) as session:
                session.run(w.initializer)
                return dumps({"w": w}, session)

    hostile = _swap_checkpoint(build(tf.float32), build(tf.int32))
    with pytest.raises(
        ng.BundleError, match=r"w: variable 'w' is float32 \(2,\) in the graph but int32"
    ):
        loads(hostile)


def test_damaged_weights_are_caught_when_read_and_only_then(bundle: bytes, tmp_path: Path) -> None:
    members = bundle_members(bundle)
    index = _tensorbundle.CheckpointIndex(dict(members)["checkpoint/model.index"], "index")
    entry = index.entries(["tower_1/layer_0/w"])["tower_1/layer_0/w"]
    data_name = "checkpoint/model.data-00000-of-00001"
    data = bytearray(dict(members)[data_name])
    data[entry.offset + entry.size // 2] ^= 0x01
    damaged = sealed([(n, bytes(data) if n == data_name else d) for n, d in members])
    (tmp_path / "damaged.ng").write_bytes(damaged)

    for attempt in (
        lambda: loads(damaged, allow=ALLOW),
        lambda: load(tmp_path / "damaged.ng", allow=ALLOW),
    ):
        with pytest.raises(ng.BundleError, match=r"cannot restore the checkpoint: .*[Cc]hecksum"):
            attempt()
    # A sub-network that does not use the damaged tensor never reads it.
    tower, session = loads(damaged, subtree="towers.0", allow=ALLOW)
    assert session.run(tower.layers[0].w).shape == (4, 4)
    session.close()


def test_an_entry_pointing_outside_its_shard_is_refused(bundle: bytes) -> None:
    members = bundle_members(bundle)
    index = _tensorbundle.CheckpointIndex(dict(members)["checkpoint/model.index"], "index")
    entries = index.entries()
    entries["tower_0/layer_0/b"].offset = 10**9
    forged = index.view(entries, lambda key, entry: entry.offset)
    header = tensor_bundle_pb2.BundleHeaderProto.FromString(
        _tensorbundle.CheckpointIndex(forged, "forged").header.SerializeToString()
    )
    assert header.num_shards == 1
    hostile = sealed([(n, forged if n.endswith(".index") else d) for n, d in members])
    with pytest.raises(
        ng.BundleError, match=r"entry 'tower_0/layer_0/b' lies outside its data shard"
    ):
        loads(hostile, allow=ALLOW)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (b"", r"shorter than a table footer"),
        (b"\x00" * 48, r"no table magic number"),
        (
            b"\x07" * 40 + (0xDB4775248B80FB57).to_bytes(8, "little"),
            r"(bad varint|outside the file|is compressed)",
        ),
    ],
)
def test_a_malformed_index_is_a_bundle_error(bundle: bytes, index: bytes, message: str) -> None:
    members = bundle_members(bundle)
    hostile = sealed([(n, index if n.endswith(".index") else d) for n, d in members])
    with pytest.raises(
        ng.BundleError, match=r"<bytes>: corrupt bundle: checkpoint index .*" + message
    ):
        loads(hostile, allow=ALLOW)


# --------------------------------------------------------------------------- the index format


def test_crc32c_matches_the_standard_check_value() -> None:
    assert _tensorbundle.crc32c(b"123456789") == 0xE3069283
    assert _tensorbundle.crc32c(b"") == 0


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.binary(min_size=1, max_size=30), st.binary(max_size=60), max_size=40))
def test_tables_round_trip(entries: dict[bytes, bytes]) -> None:
    items = sorted(entries.items())
    table = _tensorbundle.write_table(items)
    last_keys, handles = _tensorbundle.read_table(table)
    assert len(handles) == 1
    block = table[handles[0][0] : handles[0][0] + handles[0][1]]
    assert list(_tensorbundle._entries(block)) == items
    assert last_keys == [items[-1][0] if items else b""]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_index_bytes_give_a_bundle_error_or_an_index(data: bytes) -> None:
    try:
        index = _tensorbundle.CheckpointIndex(data, "random")
        index.entries()
    except ng.BundleError as exc:
        assert "corrupt bundle: checkpoint index random" in str(exc)


def test_a_view_is_read_by_tensorflow_with_moved_offsets(tmp_path: Path) -> None:
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        a = tf1.Variable(np.arange(12, dtype=np.float32).reshape(3, 4), name="a")
        s = tf1.Variable([b"x", b"yy"], name="s")
        session.run(tf1.global_variables_initializer())
        tf1.train.Saver().save(session, str(tmp_path / "m"), write_meta_graph=False)
    index = _tensorbundle.CheckpointIndex((tmp_path / "m.index").read_bytes(), "m.index")
    data = (tmp_path / "m.data-00000-of-00001").read_bytes()
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "m.data-00000-of-00001").write_bytes(b"junk" * 25 + data)
    (tmp_path / "v" / "m.index").write_bytes(
        index.view(index.entries(["s"]), lambda key, entry: 100 + entry.offset)
    )
    reader = tf1.train.NewCheckpointReader(str(tmp_path / "v" / "m"))
    assert reader.get_variable_to_shape_map() == {"s": [2]}
    assert list(reader.get_tensor("s")) == [b"x", b"yy"]
    assert set(index.entries()) == {"a", "s"}
    del a, s


# --------------------------------------------------------------------------- the streamed container


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data.extend(b)
        return len(b)


def test_save_to_an_unseekable_stream_writes_the_same_bundle(bundle: bytes) -> None:
    model, session = _build()
    out = _Unseekable()
    save(model, session, out)  # type: ignore[arg-type]
    assert bytes(out.data) == dumps(model, session)
    session.close()


# --------------------------------------------------------------------------- shards and slices


def test_sharded_bundles_load_from_bytes_whole_and_in_part() -> None:
    config = single_thread_config(device_count={"CPU": 2})
    graph = tf.Graph()
    with graph.as_default():
        model = build_tower_model(towers=2, layers=1, width=4, devices=["/cpu:0", "/cpu:1"])
        session = tf1.Session(graph=graph, config=config)
        session.run(tf1.global_variables_initializer())
        expected = session.run(model.towers[1].layers[0].w)
    data = dumps(model, session)
    assert sum(n.startswith("checkpoint/model.data") for n, _ in bundle_members(data)) > 1

    loaded, loaded_session = loads(data, allow=ALLOW, config=config)
    np.testing.assert_array_equal(loaded_session.run(loaded.towers[1].layers[0].w), expected)
    tower, tower_session = loads(data, subtree="towers.1", allow=ALLOW, config=config)
    np.testing.assert_array_equal(tower_session.run(tower.layers[0].w), expected)
    for s in (session, loaded_session, tower_session):
        s.close()


def test_partitioned_variables_restore_slice_by_slice(tmp_path: Path) -> None:
    graph = tf.Graph()
    with graph.as_default():
        parts = tf1.get_variable(
            "table",
            [10, 3],
            initializer=tf1.random_normal_initializer(seed=1),
            partitioner=tf1.fixed_size_partitioner(2),
        )
        plain = tf1.get_variable("plain", [2], initializer=tf1.ones_initializer())
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
        expected = session.run(parts.as_tensor())
    save({"plain": plain}, session, tmp_path / "p.ng")

    _, loaded = load(tmp_path / "p.ng")
    slices = sorted(
        (v for v in loaded.graph.get_collection("variables") if v.op.name.startswith("table")),
        key=lambda v: v.op.name,
    )
    assert len(slices) == 2
    np.testing.assert_array_equal(np.concatenate(loaded.run(slices)), expected)
    loaded.close()
    session.close()


def test_saving_or_exporting_a_loaded_graph_runs_only_nestgraphs_save(
    bundle: bytes, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"

    def wire_read(meta_graph: Any) -> None:
        meta_graph.graph_def.node.extend(_write_file_nodes(target))
        (read,) = [
            n
            for n in meta_graph.graph_def.node
            if n.name == "tower_0/layer_0/w/Read/ReadVariableOp"
        ]
        read.input.append("^evil")

    hostile = edit_graph(bundle, wire_read)
    model, session = loads(hostile, allow=ALLOW)  # the restore does not reach the read op
    message = r"saving a loaded graph: would run op 'evil' of type WriteFile"
    with pytest.raises(ng.BundleError, match=message):
        dumps(model, session)
    with pytest.raises(ng.BundleError, match=message):
        ng.export_saved_model(model, session, tmp_path / "served", {"x": "x"}, {"y": "loss"})
    with pytest.raises(
        ng.BundleError, match=r"reading the variables to export: would run op 'evil'"
    ):
        ng.export(model, session, tmp_path / "tower.ng", subtree="towers.0")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    session.close()


def test_without_symbolic_links_a_load_copies_just_the_needed_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, session = _build()
    save(model, session, tmp_path / "m.ng")
    expected = session.run(model.towers[1].layers[0].w)
    session.close()

    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr("os.symlink", no_links)
    tower, tower_session = load(tmp_path / "m.ng", subtree="towers.1", allow=ALLOW)
    np.testing.assert_array_equal(tower_session.run(tower.layers[0].w), expected)
    tower_session.close()


def test_bundles_packed_by_the_first_writer_still_load(bundle: bytes) -> None:
    from nestgraph.bundle._container import BundleContents, pack

    members = dict(bundle_members(bundle))
    checkpoint = {
        n[len("checkpoint/") :]: d for n, d in members.items() if n.startswith("checkpoint/")
    }
    contents = BundleContents(
        graph=members["graph.pb"],
        spec=members["spec.yaml"],
        checkpoint=checkpoint,
        checkpoint_prefix="model",
    )
    old = io.BytesIO()
    pack(contents, old, {"nestgraph": "0.1.0", "tensorflow": tf.__version__})
    model, session = loads(old.getvalue(), allow=ALLOW)
    expected, again = loads(bundle, allow=ALLOW)
    np.testing.assert_array_equal(
        session.run(model.towers[1].layers[0].w), again.run(expected.towers[1].layers[0].w)
    )
    session.close()
    again.close()
