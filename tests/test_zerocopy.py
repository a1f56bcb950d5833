"""The staged data shard becomes the bundle: in place where the disk can, copied where not."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from nestgraph.bundle import _zerocopy, _zipstream, dumps, load, save
from nestgraph.bundle._container import unpack
from nestgraph.bundle._zipstream import ALIGN, unpack_parts

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import _bundle_models as helpers  # noqa: E402

from benchmarks._models import build_tower_model, single_thread_config  # noqa: E402

tf1 = tf.compat.v1
VERSIONS = {"nestgraph": "test", "tensorflow": "none"}


def _can_insert(directory: Path) -> bool:
    probe = directory / "probe"
    probe.write_bytes(b"x" * ALIGN)
    fd = os.open(probe, os.O_RDWR)
    try:
        return _zerocopy.insert_range(fd, ALIGN)
    finally:
        os.close(fd)
        probe.unlink()


@pytest.fixture
def in_place(tmp_path: Path) -> None:
    if not _can_insert(tmp_path):
        pytest.skip("this file system cannot insert a range (tmpfs, btrfs, ...)")


@pytest.fixture
def model() -> Iterator[tuple[Any, Any]]:
    graph = tf.Graph()
    with graph.as_default():
        built = build_tower_model(towers=3, layers=2, width=8)
        session = tf1.Session(graph=graph, config=single_thread_config())
        session.run(tf1.global_variables_initializer())
    helpers.train(session, built, 0, 1)
    yield built, session
    session.close()


def _record_inserts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    results: list[bool] = []
    real = _zerocopy.insert_range

    def recording(fd: int, length: int) -> bool:
        results.append(real(fd, length))
        return results[-1]

    monkeypatch.setattr(_zerocopy, "insert_range", recording)
    return results


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    tested = subprocess.run(
        [sys.executable, "-m", "zipfile", "-t", str(path)], capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stderr


# --------------------------------------------------------------------------- ng.save


@pytest.mark.usefixtures("in_place")
def test_a_local_save_turns_the_staged_shard_into_the_bundle(
    model: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, session = model
    inserts = _record_inserts(monkeypatch)
    path = tmp_path / "model.ng"
    save(built, session, path)
    assert inserts == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ng"]  # staging removed
    _check_zip(path)
    with path.open("rb") as stream:
        parts = unpack_parts(stream, str(path))
    (shard,) = parts.shards.values()
    assert shard.offset % ALIGN == 0
    # The same bytes as the copying path writes (dumps goes through ram://).
    assert path.read_bytes() == dumps(built, session)
    loaded, loaded_session = load(path, allow=helpers.ALLOW)
    np.testing.assert_array_equal(
        loaded_session.run(loaded.towers[2].layers[1].w), session.run(built.towers[2].layers[1].w)
    )
    loaded_session.close()


@pytest.mark.usefixtures("in_place")
def test_a_relative_target_is_saved_in_place_too(
    model: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, session = model
    inserts = _record_inserts(monkeypatch)
    monkeypatch.chdir(tmp_path)
    save(built, session, "model.ng")
    assert inserts == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ng"]
    _check_zip(tmp_path / "model.ng")


def test_where_the_disk_cannot_insert_the_bundle_is_copied(
    model: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, session = model
    monkeypatch.setattr(_zerocopy, "insert_range", lambda fd, length: False)
    path = tmp_path / "model.ng"
    path.write_bytes(b"old")
    save(built, session, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ng"]
    _check_zip(path)
    assert path.read_bytes() == dumps(built, session)
    loaded, loaded_session = load(path, allow=helpers.ALLOW)
    assert loaded_session.run(loaded.global_step) == 1
    loaded_session.close()


def test_a_failure_to_make_room_keeps_the_old_bundle_and_leaves_nothing(
    model: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, session = model

    def full(fd: int, length: int) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_zerocopy, "insert_range", full)
    path = tmp_path / "model.ng"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        save(built, session, path)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ng"]


# --------------------------------------------------------------------------- write_bundle


def _stage(directory: Path, files: dict[str, bytes]) -> dict[str, Any]:
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return {name: open(directory / name, "rb") for name in files}


CHECKPOINT = {
    "model.index": b"index bytes",
    "model.data-00000-of-00003": os.urandom(5000),
    "model.data-00001-of-00003": os.urandom(70_000),  # the largest: the base
    "model.data-00002-of-00003": b"",
}
MEMBERS = [("graph.pb", b"graph"), ("spec.yaml", b"nestgraph: 1\n"), ("arrays/0.npy", b"x" * 300)]


def _written(tmp_path: Path, copied: bool, monkeypatch: pytest.MonkeyPatch) -> bytes:
    if copied:
        monkeypatch.setattr(_zerocopy, "insert_range", lambda fd, length: False)
    else:
        inserts = _record_inserts(monkeypatch)
    stage = tmp_path / ("copied" if copied else "in-place")
    files = _stage(stage, CHECKPOINT)
    target = tmp_path / f"{stage.name}.ng"
    try:
        _zerocopy.write_bundle(str(target), MEMBERS, files, "model", VERSIONS)
    finally:
        for file in files.values():
            file.close()
    if not copied:
        assert inserts == [True]
        assert not (stage / "model.data-00001-of-00003").exists()  # it became the bundle
    monkeypatch.undo()
    _check_zip(target)
    return target.read_bytes()


@pytest.mark.usefixtures("in_place")
def test_several_shards_the_largest_last_the_same_bytes_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_place = _written(tmp_path, False, monkeypatch)
    assert _written(tmp_path, True, monkeypatch) == in_place
    contents = unpack(io.BytesIO(in_place), "b.ng")
    assert dict(contents.checkpoint) == CHECKPOINT
    assert contents.graph == b"graph" and dict(contents.arrays) == {"arrays/0.npy": b"x" * 300}
    names = zipfile.ZipFile(io.BytesIO(in_place)).namelist()
    assert names[:4] == ["manifest.json", "graph.pb", "spec.yaml", "arrays/0.npy"]
    assert names[-1] == "checkpoint/model.data-00001-of-00003"
    parts = contents.manifest["parts"]
    assert parts["checkpoint/model.data-00001-of-00003"] == {
        "size": 70_000,
        "verified_by": "checkpoint-index",
    }
    assert set(parts["checkpoint/model.index"]) == {"sha256", "size"}
    located = unpack_parts(io.BytesIO(in_place), "b.ng").shards["model.data-00001-of-00003"]
    assert located.offset % ALIGN == 0
    assert (
        in_place[located.offset : located.offset + located.size]
        == CHECKPOINT["model.data-00001-of-00003"]
    )


def test_members_past_the_zip64_limit_get_zip64_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lowered limit: every size and offset above 64 bytes takes the ZIP64 form.
    monkeypatch.setattr(_zipstream, "_LIMIT", 64)
    data = _written(tmp_path, True, monkeypatch)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("checkpoint/model.data-00001-of-00003")
        assert info.file_size == 70_000 and info.extract_version == 45
    assert b"PK\x06\x06" in data[-200:]  # the ZIP64 end of central directory record
    assert dict(unpack(io.BytesIO(data), "b.ng").checkpoint) == CHECKPOINT


# --------------------------------------------------------------------------- the system calls


@pytest.mark.usefixtures("in_place")
def test_insert_range_puts_a_hole_in_front(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"payload" * 1000)
    fd = os.open(path, os.O_RDWR)
    try:
        assert _zerocopy.insert_range(fd, 2 * ALIGN)
        assert not _zerocopy.insert_range(fd, 100)  # not whole blocks: EINVAL, unchanged
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(2 * ALIGN) + b"payload" * 1000


def test_insert_range_says_no_where_the_file_system_cannot() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or _can_insert(shm):
        pytest.skip("no tmpfs at /dev/shm to try")
    with tempfile.NamedTemporaryFile(dir=shm) as file:
        file.write(b"payload" * 1000)
        file.flush()
        assert not _zerocopy.insert_range(file.fileno(), ALIGN)
        assert Path(file.name).read_bytes() == b"payload" * 1000
        _zerocopy.start_writeback(file.fileno())  # advice only: tmpfs has nothing to write
