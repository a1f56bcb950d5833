"""Bundles: save / load / dumps / loads / export / export_saved_model."""

from __future__ import annotations

import builtins
import gc
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
import weakref
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from conftest import Members, bundle_members, sealed, zip_members
from tensorflow.core.protobuf import meta_graph_pb2

import nestgraph as ng
from nestgraph.bundle import dumps, export, export_saved_model, load, loads, save

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import _bundle_models as helpers  # noqa: E402

from benchmarks._models import (  # noqa: E402
    Tower,
    TowerModel,
    batch,
    build_tower_model,
    single_thread_config,
)

tf1 = tf.compat.v1
ALLOW = helpers.ALLOW
WIDTH = 8


def _build(
    towers: int = 3, devices: list[str] | None = None, config: Any = None
) -> tuple[TowerModel, Any]:
    graph = tf.Graph()
    with graph.as_default():
        model = build_tower_model(towers=towers, layers=2, width=WIDTH, devices=devices)
        session = tf1.Session(graph=graph, config=config or single_thread_config())
        session.run(tf1.global_variables_initializer())
    return model, session


@pytest.fixture
def trained() -> Iterator[tuple[TowerModel, Any]]:
    """A tiny model after two Adam steps (so slots and global step are non-trivial)."""
    model, session = _build()
    helpers.train(session, model, 0, 2)
    yield model, session
    session.close()


@pytest.fixture(scope="module")
def bundle_bytes() -> bytes:
    model, session = _build()
    helpers.train(session, model, 0, 1)
    data = dumps(model, session)
    session.close()
    return data


def _x(step: int = 99) -> np.ndarray:
    return batch(WIDTH, step)[0]


def _variable_values(session: Any) -> dict[str, np.ndarray]:
    variables = session.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    return dict(zip([v.op.name for v in variables], session.run(variables), strict=True))


def _tower_outputs(session: Any, model: TowerModel) -> list[np.ndarray]:
    return session.run([t.out for t in model.towers], {model.x: _x()})


def _manifest(members: Members) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(dict(members)["manifest.json"])
    return result


def _with_manifest(members: Members, manifest: dict[str, Any]) -> Members:
    return [("manifest.json", json.dumps(manifest).encode())] + [
        (n, d) for n, d in members if n != "manifest.json"
    ]


def _resealed(members: Members) -> Members:
    """The members with a manifest whose checksums match them again."""
    manifest = _manifest(members)
    manifest["parts"] = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for n, d in members
        if n != "manifest.json"
    }
    return _with_manifest(members, manifest)


def _run_child(*args: str, pythonpath: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


# --------------------------------------------------------------------------- format


def test_bundle_is_a_stored_zip_with_a_checksummed_manifest_first(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    path = tmp_path / "model.ng"
    save(model, session, path)

    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names[:3] == ["manifest.json", "graph.pb", "spec.yaml"]
        assert set(names[3:]) == {
            "subnets.bin",
            "subnets.json",
            "checkpoint/model.index",
            "checkpoint/model.data-00000-of-00001",
        }
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["format"] == "nestgraph-bundle"
        assert manifest["version"] == 2
        assert manifest["nestgraph"] == ng.__version__
        assert manifest["tensorflow"] == tf.__version__
        assert manifest["checkpoint_prefix"] == "checkpoint/model"
        assert sorted(manifest["parts"]) == sorted(names[1:])
        for name, entry in manifest["parts"].items():
            data = archive.read(name)  # checks the zip's CRC-32
            if ".data-" in name:  # verified by the index's per-tensor CRC-32C (version 2)
                assert entry == {"size": len(data), "verified_by": "checkpoint-index"}
            else:
                assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        meta_graph = meta_graph_pb2.MetaGraphDef.FromString(archive.read("graph.pb"))
        assert meta_graph.HasField("saver_def")
        assert "train_op" in meta_graph.collection_def
        assert ng.Spec.from_yaml(archive.read("spec.yaml")) == ng.to_graph(model)


def test_a_version_1_bundle_hashing_its_shards_still_loads(bundle_bytes: bytes) -> None:
    members = bundle_members(bundle_bytes)
    manifest = {**_manifest(members), "version": 1}
    old = sealed(_with_manifest(members, manifest))  # a SHA-256 for every member, as v1 wrote
    shard = _manifest(bundle_members(old))["parts"]["checkpoint/model.data-00000-of-00001"]
    assert set(shard) == {"sha256", "size"}
    model, session = loads(old, allow=ALLOW)
    again, again_session = loads(bundle_bytes, allow=ALLOW)
    np.testing.assert_array_equal(
        session.run(model.towers[1].layers[0].w), again_session.run(again.towers[1].layers[0].w)
    )
    session.close()
    again_session.close()


def test_dumps_returns_exactly_the_bytes_save_writes(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    save(model, session, tmp_path / "model.ng")
    assert dumps(model, session) == (tmp_path / "model.ng").read_bytes()


def test_save_and_load_accept_file_objects(trained: tuple[TowerModel, Any]) -> None:
    model, session = trained
    buffer = io.BytesIO()
    save(model, session, buffer)
    buffer.seek(0)
    _, loaded_session = load(buffer, allow=ALLOW)
    assert _variable_values(loaded_session).keys() == _variable_values(session).keys()
    loaded_session.close()


def test_load_and_loads_say_which_takes_bytes(bundle_bytes: bytes) -> None:
    with pytest.raises(TypeError, match="pass bytes to loads"):
        load(bundle_bytes)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loads takes bytes, not str"):
        loads("model.ng")  # type: ignore[arg-type]


def test_plain_tensorflow_reads_a_bundle(trained: tuple[TowerModel, Any], tmp_path: Path) -> None:
    model, session = trained
    with zipfile.ZipFile(io.BytesIO(dumps(model, session))) as archive:
        archive.extractall(tmp_path)
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as plain:
        saver = tf1.train.import_meta_graph(str(tmp_path / "graph.pb"))
        saver.restore(plain, str(tmp_path / "checkpoint" / "model"))
        restored = _variable_values(plain)
    expected = _variable_values(session)
    assert restored.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(restored[name], value)


# --------------------------------------------------------------------------- load


def test_load_restores_weights_slots_and_global_step(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    save(model, session, tmp_path / "model.ng")

    loaded, loaded_session = load(tmp_path / "model.ng", allow=ALLOW)

    assert isinstance(loaded, TowerModel)
    assert loaded_session.graph is not session.graph
    assert loaded_session.run(loaded.global_step) == 2
    restored, expected = _variable_values(loaded_session), _variable_values(session)
    assert any(name.endswith("/Adam") for name in expected)
    assert restored.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(restored[name], value)
    for got, want in zip(
        _tower_outputs(loaded_session, loaded), _tower_outputs(session, model), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    loaded_session.close()


def test_local_variables_start_from_their_initializers(tmp_path: Path) -> None:
    model, session = _build()
    with session.graph.as_default():
        seen = tf1.Variable(5.0, name="seen", collections=[tf1.GraphKeys.LOCAL_VARIABLES])
        session.run(seen.initializer)
        session.run(seen.assign(7.0))
    save(
        None, session, tmp_path / "m.ng", spec=ng.to_graph({"tower": model.towers[0], "seen": seen})
    )

    loaded, loaded_session = load(tmp_path / "m.ng", allow=ALLOW)

    assert loaded_session.run(loaded["seen"]) == 5.0  # not saved, so initialized, not restored
    loaded_session.close()


def test_saver_is_added_once_per_graph_and_variable_set(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    graph = session.graph
    save(model, session, tmp_path / "a.ng")
    count = len(graph.get_operations())
    save(model, session, tmp_path / "a.ng")
    dumps(model, session)
    export_saved_model(model, session, tmp_path / "served", {"x": "x"}, {"y": "towers.0.out"})
    assert len(graph.get_operations()) == count

    with graph.as_default():
        extra = tf1.get_variable("extra", [2], initializer=tf1.ones_initializer())
    session.run(extra.initializer)
    save(model, session, tmp_path / "b.ng")
    assert len(graph.get_operations()) > count
    _, loaded_session = load(tmp_path / "b.ng", allow=ALLOW)
    np.testing.assert_array_equal(_variable_values(loaded_session)["extra"], [1.0, 1.0])

    # A loaded graph never runs the saver it came with (its ops are the bundle's
    # choice): its first save adds nestgraph's own saver, and later saves reuse it.
    loaded_graph = loaded_session.graph
    dumps(None, loaded_session, spec=ng.to_graph(model))
    loaded_count = len(loaded_graph.get_operations())
    again = dumps(None, loaded_session, spec=ng.to_graph(model))
    assert len(loaded_graph.get_operations()) == loaded_count
    bundle_def, resaved_def = (
        meta_graph_pb2.MetaGraphDef.FromString(dict(bundle_members(data))["graph.pb"]).saver_def
        for data in ((tmp_path / "b.ng").read_bytes(), again)
    )
    assert resaved_def.save_tensor_name != bundle_def.save_tensor_name
    assert resaved_def.restore_op_name != bundle_def.restore_op_name
    loaded_session.close()


def test_the_saver_cache_does_not_keep_a_graph_alive() -> None:
    model, session = _build()
    dumps(model, session)
    graph = weakref.ref(session.graph)
    session.close()
    del model, session
    gc.collect()
    assert graph() is None


def test_save_refuses_names_the_graph_lacks(tmp_path: Path) -> None:
    _, session = _build(towers=3)
    bigger, _ = _build(towers=4)
    with pytest.raises(ng.BindingError, match=r"towers\.3\.out: no tensor 'tower_3/"):
        save(None, session, tmp_path / "m.ng", spec=ng.to_graph(bigger))
    assert not (tmp_path / "m.ng").exists()


def test_save_of_a_finalized_graph_without_saver_says_what_to_do(tmp_path: Path) -> None:
    model, session = _build()
    session.graph.finalize()
    with pytest.raises(ng.BundleError, match="graph is finalized.*before finalizing"):
        save(model, session, tmp_path / "m.ng")


def test_save_and_load_through_gfile_paths(trained: tuple[TowerModel, Any]) -> None:
    model, session = trained
    directory = f"ram://nestgraph-test-{uuid.uuid4().hex}"
    tf.io.gfile.makedirs(directory)
    try:
        save(model, session, f"{directory}/model.ng")
        save(model, session, f"{directory}/model.ng")
        assert tf.io.gfile.listdir(directory) == ["model.ng"]
        loaded, loaded_session = load(f"{directory}/model.ng", allow=ALLOW)
        assert loaded_session.run(loaded.global_step) == 2
        loaded_session.close()
    finally:
        tf.io.gfile.rmtree(directory)


def test_dumps_and_loads_never_touch_the_local_disk(
    trained: tuple[TowerModel, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, session = trained
    cwd, temp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    real_open, real_os_open = builtins.open, os.open

    def no_writing_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in mode for flag in "wax+"):
            raise AssertionError(f"opened {file!r} for writing")
        return real_open(file, mode, *args, **kwargs)

    def no_writing_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise AssertionError(f"opened {path!r} for writing")
        return real_os_open(path, flags, *args, **kwargs)

    # TensorFlow writes checkpoints from C++, out of Python's sight: check where it is told to.
    paths: list[str] = []
    real_save, real_restore = tf1.train.Saver.save, tf1.train.Saver.restore
    real_gfile = tf.io.gfile.GFile

    def recording_save(self: Any, sess: Any, save_path: str, *args: Any, **kwargs: Any) -> Any:
        paths.append(save_path)
        return real_save(self, sess, save_path, *args, **kwargs)

    def recording_restore(self: Any, sess: Any, save_path: str) -> Any:
        paths.append(save_path)
        return real_restore(self, sess, save_path)

    def recording_gfile(name: str, mode: str = "r") -> Any:
        paths.append(name)
        return real_gfile(name, mode)

    monkeypatch.setattr(builtins, "open", no_writing_open)
    monkeypatch.setattr(os, "open", no_writing_os_open)
    monkeypatch.setattr(tf1.train.Saver, "save", recording_save)
    monkeypatch.setattr(tf1.train.Saver, "restore", recording_restore)
    monkeypatch.setattr(tf.io.gfile, "GFile", recording_gfile)

    loaded, loaded_session = loads(dumps(model, session), allow=ALLOW)

    assert loaded_session.run(loaded.global_step) == 2
    assert len(paths) > 3
    assert all(path.startswith("ram://nestgraph-") for path in paths), paths
    assert list(cwd.iterdir()) == []
    assert list(temp.iterdir()) == []
    loaded_session.close()


def test_no_checkpoint_files_stay_in_memory(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    before = tf.io.gfile.glob("ram://*")
    data = dumps(model, session)
    _, loaded_session = loads(data, allow=ALLOW)
    _, tower_session = loads(data, subtree="towers.0", allow=ALLOW)
    export(model, session, tmp_path / "tower.ng", subtree="towers.0")
    assert tf.io.gfile.glob("ram://*") == before
    loaded_session.close()
    tower_session.close()


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "copied"])
def test_a_save_failing_midway_keeps_the_previous_bundle(
    trained: tuple[TowerModel, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_place: bool
) -> None:
    from nestgraph.bundle import _zerocopy, _zipstream

    model, session = trained
    path = tmp_path / "model.ng"
    save(model, session, path)
    before = path.read_bytes()
    helpers.train(session, model, 2, 1)
    real_render = _zipstream.Layout.render
    calls = []

    def fail_on_third_member(self: _zipstream.Layout, member: Any) -> bytes:
        calls.append(member)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_render(self, member)

    monkeypatch.setattr(_zipstream.Layout, "render", fail_on_third_member)
    if not in_place:
        monkeypatch.setattr(_zerocopy, "insert_range", lambda fd, length: False)
    with pytest.raises(OSError, match="disk full"):
        save(model, session, path)
    monkeypatch.undo()

    assert [p.name for p in tmp_path.iterdir()] == ["model.ng"]  # the temporary file is gone
    assert path.read_bytes() == before
    loaded, loaded_session = load(path, allow=ALLOW)
    assert loaded_session.run(loaded.global_step) == 2
    loaded_session.close()


def test_a_killed_save_keeps_the_previous_bundle(tmp_path: Path) -> None:
    path = tmp_path / "model.ng"
    child = _run_child(
        str(REPO / "tests" / "_bundle_models.py"),
        "killed-save",
        str(path),
        pythonpath=str(REPO),
        cwd=tmp_path,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    # Written to an unnamed file (O_TMPFILE), which died with the writer; where the OS
    # has none, a locked temporary that the next save sweeps (tests/test_atomic.py).
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    temporary = r"\.model\.ng\.[0-9a-f]{8}\.[0-9a-f]{12}\.tmp"
    assert leftovers == [] or [bool(re.fullmatch(temporary, n)) for n in leftovers] == [True]
    loaded, loaded_session = load(path, allow=ALLOW)
    assert loaded_session.run(loaded.global_step) == 0  # the bundle saved before training
    loaded_session.close()


# --------------------------------------------------------------------------- fresh processes


def test_training_continues_in_a_fresh_process(tmp_path: Path) -> None:
    model, session = _build()
    helpers.train(session, model, 0, 3)
    path = tmp_path / "model.ng"
    save(model, session, path)
    slot = helpers.to_hex(helpers.slot_value(session))
    expected = helpers.train(session, model, 3, 3)  # steps 4-6 in this process

    child = _run_child(
        str(REPO / "tests" / "_bundle_models.py"),
        "continue",
        str(path),
        "3",
        "3",
        pythonpath=str(REPO),
        cwd=tmp_path,
    )

    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.splitlines()[-1])
    assert report["class"] == "TowerModel"
    assert report["global_step"] == 3
    assert report["slot"] == slot
    assert report["losses"] == expected  # bit for bit


_GENERIC_CHILD = """
import importlib.util, json, sys
import numpy as np
from nestgraph import ClassNotAllowedError, Node
from nestgraph.bundle import load

assert importlib.util.find_spec("benchmarks") is None, "model code must not be importable"
path, x_file = sys.argv[1:]
try:
    load(path)
except ClassNotAllowedError as exc:
    refused = str(exc)
else:
    refused = ""
model, session = load(path, generic=True)
outs = session.run([tower.out for tower in model.towers], {model.x: np.load(x_file)})
print(json.dumps({
    "refused": refused,
    "node": isinstance(model, Node) and isinstance(model.towers[0], Node),
    "repr": repr(model),
    "outs": [np.ascontiguousarray(o).tobytes().hex() for o in outs],
}))
"""


def test_a_process_without_the_model_code_loads_generic_nodes(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    save(model, session, tmp_path / "model.ng")
    np.save(tmp_path / "x.npy", _x())
    site = tmp_path / "site"  # nestgraph alone: no benchmarks, no tests
    site.mkdir()
    (site / "nestgraph").symlink_to(REPO / "nestgraph")

    child = _run_child(
        "-c",
        _GENERIC_CHILD,
        str(tmp_path / "model.ng"),
        str(tmp_path / "x.npy"),
        pythonpath=str(site),
        cwd=tmp_path,
    )

    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.splitlines()[-1])
    assert "benchmarks._models:TowerModel" in report["refused"]
    assert report["node"] is True
    assert "benchmarks._models:TowerModel" in report["repr"]
    assert report["outs"] == [helpers.to_hex(o) for o in _tower_outputs(session, model)]


# --------------------------------------------------------------------------- sub-networks


def test_subtree_load_imports_and_restores_only_that_tower(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    save(model, session, tmp_path / "model.ng")
    _, full_session = load(tmp_path / "model.ng", allow=ALLOW)

    tower, sub_session = load(tmp_path / "model.ng", subtree="towers.1", allow=ALLOW)

    assert isinstance(tower, Tower)
    full_ops = len(full_session.graph.get_operations())
    assert len(sub_session.graph.get_operations()) * 5 < full_ops
    restored = _variable_values(sub_session)
    assert sorted(restored) == [f"tower_1/layer_{i}/{v}" for i in (0, 1) for v in ("b", "w")]
    expected = _variable_values(session)
    for name, value in restored.items():
        np.testing.assert_array_equal(value, expected[name])
    got = sub_session.run(tower.out, {"x:0": _x()})
    np.testing.assert_array_equal(got, _tower_outputs(session, model)[1])
    sub_session.close()
    full_session.close()


def test_subtree_load_of_a_path_not_in_the_spec(bundle_bytes: bytes) -> None:
    with pytest.raises(ng.SpecError, match=r"towers\.7: no '7' here"):
        loads(bundle_bytes, subtree="towers.7", allow=ALLOW)


def test_export_writes_a_small_standalone_sub_network(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    save(model, session, tmp_path / "full.ng")
    count = len(session.graph.get_operations())

    export(model, session, tmp_path / "tower.ng", subtree="towers.2")

    assert len(session.graph.get_operations()) == count
    assert (tmp_path / "tower.ng").stat().st_size * 4 < (tmp_path / "full.ng").stat().st_size
    tower, tower_session = load(tmp_path / "tower.ng", allow=ALLOW)
    assert isinstance(tower, Tower)
    assert sorted(_variable_values(tower_session)) == [
        f"tower_2/layer_{i}/{v}" for i in (0, 1) for v in ("b", "w")
    ]
    got = tower_session.run(tower.out, {"x:0": _x()})
    np.testing.assert_array_equal(got, _tower_outputs(session, model)[2])
    with zipfile.ZipFile(tmp_path / "tower.ng") as archive:
        spec = ng.Spec.from_yaml(archive.read("spec.yaml"))
    assert spec == ng.to_graph(model).subtree("towers.2")
    tower_session.close()


def test_export_freeze_turns_variables_into_constants(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained

    export(model, session, tmp_path / "frozen.ng", subtree="towers.2", freeze=True)

    members = bundle_members((tmp_path / "frozen.ng").read_bytes())
    assert [name for name, _ in members] == [
        "manifest.json",
        "graph.pb",
        "spec.yaml",
        "subnets.bin",
        "subnets.json",
    ]
    assert _manifest(members)["checkpoint_prefix"] is None
    spec = ng.Spec.from_yaml(dict(members)["spec.yaml"])
    assert {b.kind for b in spec.bindings()} == {"tensor"}
    tower, frozen_session = load(tmp_path / "frozen.ng", allow=ALLOW)
    assert frozen_session.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES) == []
    assert not isinstance(tower.layers[0].w, tf.Variable)
    np.testing.assert_array_equal(
        frozen_session.run(tower.layers[0].w), session.run(model.towers[2].layers[0].w)
    )
    got = frozen_session.run(tower.out, {"x:0": _x()})
    np.testing.assert_array_equal(got, _tower_outputs(session, model)[2])
    frozen_session.close()


# --------------------------------------------------------------------------- SavedModel


def test_export_saved_model_serves_the_same_numbers_in_tf2(
    trained: tuple[TowerModel, Any], tmp_path: Path
) -> None:
    model, session = trained
    export_dir = tmp_path / "served"

    export_saved_model(
        model,
        session,
        export_dir,
        inputs={"x": "x"},
        outputs={"out": "towers.1.out", "first": "tower_0/layer_0/Relu:0"},
    )

    served = tf.saved_model.load(str(export_dir))
    result = served.signatures["serving_default"](x=tf.constant(_x()))
    want_out, want_first = session.run(
        [model.towers[1].out, model.towers[0].layers[0].out], {model.x: _x()}
    )
    np.testing.assert_array_equal(result["out"].numpy(), want_out)
    np.testing.assert_array_equal(result["first"].numpy(), want_first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"w": "towers.0.layers.0.w"}, r"'w' must name a tensor binding; this is a variable"),
        ({"t": "towers.0"}, r"'t' must name a tensor binding; this is not a binding"),
        ({"y": "towers.9.out"}, r"neither a path in the spec nor a graph tensor name"),
        ({"y": "ghost:0"}, r"no tensor 'ghost:0' in the graph"),
    ],
)
def test_export_saved_model_refuses_what_is_not_a_tensor(
    trained: tuple[TowerModel, Any], tmp_path: Path, outputs: dict[str, str], message: str
) -> None:
    model, session = trained
    with pytest.raises(ng.BindingError, match=message):
        export_saved_model(model, session, tmp_path / "served", {"x": "x"}, outputs)
    assert list(tmp_path.iterdir()) == []


def test_export_saved_model_is_all_or_nothing(
    trained: tuple[TowerModel, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, session = trained
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ng.BundleError, match=r"taken: already exists"):
        export_saved_model(model, session, tmp_path / "taken", {"x": "x"}, {"y": "loss"})

    def broken_save(self: Any, as_text: bool = False) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(tf1.saved_model.Builder, "save", broken_save)
    with pytest.raises(RuntimeError, match="interrupted"):
        export_saved_model(model, session, tmp_path / "served", {"x": "x"}, {"y": "loss"})
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


# --------------------------------------------------------------------------- sharded checkpoints


def test_variables_on_two_devices_save_as_shards_and_load_unchanged(tmp_path: Path) -> None:
    config = single_thread_config(device_count={"CPU": 2})
    model, session = _build(devices=["/cpu:0", "/cpu:1"], config=config)
    helpers.train(session, model, 0, 1)
    path = tmp_path / "model.ng"

    save(model, session, path)

    shards = [
        n for n, _ in bundle_members(path.read_bytes()) if n.startswith("checkpoint/model.data")
    ]
    assert len(shards) == 3  # one per device, and one for the unplaced optimizer state
    expected = _variable_values(session)
    loaded, loaded_session = load(path, allow=ALLOW, config=config)
    assert loaded.towers[1].layers[0].w.device.endswith("CPU:1")
    restored = _variable_values(loaded_session)
    assert restored.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(restored[name], value)
    # Without a config, soft placement lets a one-device session load it too.
    _, default_session = load(path, allow=ALLOW)
    np.testing.assert_array_equal(
        _variable_values(default_session)["tower_1/layer_1/w"], expected["tower_1/layer_1/w"]
    )
    default_session.close()
    tower, tower_session = load(path, subtree="towers.1", allow=ALLOW, config=config)
    np.testing.assert_array_equal(
        tower_session.run(tower.layers[1].w), expected["tower_1/layer_1/w"]
    )
    loaded_session.close()
    tower_session.close()


# --------------------------------------------------------------------------- bad bundles


def _flip_a_byte_of(member: str) -> Callable[[bytes], bytes]:
    def flip(data: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo(member)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        middle = start + info.file_size // 2
        return data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :]

    return flip


def _edit_members(edit: Callable[[Members], Members]) -> Callable[[bytes], bytes]:
    return lambda data: zip_members(edit(bundle_members(data)))


def _future_version(members: Members) -> Members:
    return _with_manifest(members, {**_manifest(members), "version": 3})


def _other_format(members: Members) -> Members:
    return _with_manifest(members, {**_manifest(members), "format": "other"})


def _same_size_spec(members: Members) -> Members:
    spec = dict(members)["spec.yaml"]
    return [
        (n, spec.replace(b"tower_0", b"tower_9", 1) if n == "spec.yaml" else d) for n, d in members
    ]


def _longer_spec(members: Members) -> Members:
    return [(n, d + b"\n" if n == "spec.yaml" else d) for n, d in members]


def _without(member: str) -> Callable[[Members], Members]:
    return lambda members: [(n, d) for n, d in members if n != member]


def _with_extra(members: Members) -> Members:
    return [*members, ("extra.txt", b"hello")]


def _graph_first(members: Members) -> Members:
    return [members[1], members[0], *members[2:]]


def _evil_name(members: Members) -> Members:
    manifest = _manifest(members)
    manifest["parts"]["checkpoint/../evil"] = {"sha256": "0" * 64, "size": 1}
    return _with_manifest(members, manifest)


BAD_BUNDLES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("truncated", lambda d: d[: len(d) // 2], r"not a nestgraph bundle \(truncated"),
    ("tail-cut", lambda d: d[:-10], r"not a nestgraph bundle \(truncated"),
    ("random", lambda d: os.urandom(4096), r"not a nestgraph bundle"),
    ("empty", lambda d: b"", r"not a nestgraph bundle"),
    ("bit-flip", _flip_a_byte_of("graph.pb"), r"corrupt bundle: member graph\.pb is damaged"),
    (
        # Weights are not hashed on load: TensorFlow checks each tensor's CRC-32C as it reads it.
        "weights-flip",
        _flip_a_byte_of("checkpoint/model.data-00000-of-00001"),
        r"cannot restore the checkpoint: .*Checksum does not match",
    ),
    (
        "checksum",
        _edit_members(_same_size_spec),
        r"corrupt bundle: checksum mismatch for member spec\.yaml",
    ),
    ("size", _edit_members(_longer_spec), r"member spec\.yaml holds \d+ bytes, the manifest says"),
    ("future", _edit_members(_future_version), r"version 3 is newer .*upgrade nestgraph"),
    ("format", _edit_members(_other_format), r"manifest format is 'other'"),
    (
        "missing",
        _edit_members(_without("checkpoint/model.data-00000-of-00001")),
        r"missing member\(s\) listed in the manifest: checkpoint/model\.data-00000-of-00001",
    ),
    (
        "missing-listed",
        _edit_members(lambda m: _resealed(_without("checkpoint/model.index")(m))),
        r"no checkpoint index checkpoint/model\.index",
    ),
    ("unlisted", _edit_members(_with_extra), r"not listed in the manifest: extra\.txt"),
    ("order", _edit_members(_graph_first), r"first member is 'graph\.pb', not 'manifest\.json'"),
    ("traversal", _edit_members(_evil_name), r"unexpected member 'checkpoint/\.\./evil'"),
    (
        "compressed",
        lambda d: zip_members(bundle_members(d), compression=zipfile.ZIP_DEFLATED),
        r"implausible manifest\.json|is compressed",
    ),
]


@pytest.mark.parametrize(
    ("damage", "message"), [case[1:] for case in BAD_BUNDLES], ids=[c[0] for c in BAD_BUNDLES]
)
def test_bad_bundles_raise_bundle_error_naming_file_and_problem(
    bundle_bytes: bytes, tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    path = tmp_path / "bad.ng"
    path.write_bytes(damage(bundle_bytes))
    with pytest.raises(ng.BundleError, match=re.escape(str(path)) + ": .*" + message):
        load(path, allow=ALLOW)
    with pytest.raises(ng.BundleError, match="<bytes>: .*" + message):
        loads(path.read_bytes(), allow=ALLOW)


def test_missing_paths_and_directories_are_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(ng.BundleError, match=re.escape(str(tmp_path / "absent.ng")) + ": no such"):
        load(tmp_path / "absent.ng")
    with pytest.raises(ng.BundleError, match=re.escape(str(tmp_path)) + ": is a directory"):
        load(tmp_path)
    with pytest.raises(ng.BundleError, match="ram://nowhere/absent.ng: no such bundle"):
        load("ram://nowhere/absent.ng")


def test_a_failed_restore_leaves_no_open_session(
    bundle_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A well-formed bundle whose checkpoint lacks some of the graph's variables.
    small_model, small_session = _build(towers=2)
    other = dict(bundle_members(dumps(small_model, small_session)))
    members = [
        (n, other[n] if n.startswith("checkpoint/") else d) for n, d in bundle_members(bundle_bytes)
    ]
    opened: list[Any] = []
    real_init = tf1.Session.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(tf1.Session, "__init__", recording_init)

    with pytest.raises(
        ng.BundleError, match=r"<bytes>: variable\(s\) not in the bundle's checkpoint: tower_2/"
    ):
        loads(zip_members(_resealed(members)), allow=ALLOW)
    assert opened == []  # checked against the index before any session exists

    # Weights damaged inside the data shard are found while restoring, in a session.
    damaged = _flip_a_byte_of("checkpoint/model.data-00000-of-00001")(bundle_bytes)
    with pytest.raises(ng.BundleError, match=r"<bytes>: cannot restore the checkpoint: .*Checksum"):
        loads(damaged, allow=ALLOW)
    assert len(opened) == 1
    with pytest.raises(RuntimeError, match="closed Session"):
        opened[0].run(opened[0].graph.get_operations()[0])


def test_refused_classes_fail_before_any_session_exists(
    bundle_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    real_init = tf1.Session.__init__
    monkeypatch.setattr(
        tf1.Session,
        "__init__",
        lambda self, *a, **k: (opened.append(self), real_init(self, *a, **k)),
    )
    with pytest.raises(ng.ClassNotAllowedError, match=r"benchmarks\._models:TowerModel"):
        loads(bundle_bytes)
    assert opened == []


class _Part(ng.GraphConvertible):
    pass


class _Whole(ng.GraphConvertible):
    pass


def test_real_classes_shared_objects_and_cycles_come_back() -> None:
    graph = tf.Graph()
    with graph.as_default():
        whole = _Whole()
        whole.x = tf1.placeholder(tf.float32, [None, 2], name="x")
        whole.parts = []
        for i in range(2):
            part = _Part()
            part.w = tf1.get_variable(f"part_{i}/w", [2, 2])
            part.out = tf.matmul(whole.x, part.w, name=f"part_{i}/out")
            part.owner = whole  # a cycle back to the root
            whole.parts.append(part)
        whole.best = whole.parts[1]  # a shared object
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    data = dumps(whole, session)
    expected = session.run(whole.best.out, {whole.x: _x()[:, :2]})

    again, loaded = loads(data)
    assert type(again) is _Whole and type(again.parts[0]) is _Part
    assert again.best is again.parts[1]
    assert again.parts[0].owner is again
    got = loaded.run(again.best.out, {again.x: _x()[:, :2]})
    assert np.array_equal(got, expected)

    part, part_session = loads(data, subtree="parts.1")
    assert type(part) is _Part and part.owner.best is part
    assert np.array_equal(part_session.run(part.w), session.run(whole.parts[1].w))
    for s in (session, loaded, part_session):
        s.close()
