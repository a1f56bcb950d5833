"""Atomic writes: old file or complete new one, no debris, long names, scheme paths."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph import _atomic

tf1 = tf.compat.v1
REPO = Path(__file__).resolve().parent.parent
UNNAMED = _atomic._open_unnamed(str(REPO)) is not None

# Dies (SIGKILL) halfway through a write, or between linking and renaming.
_CHILD = """
import os, signal, sys
from nestgraph import _atomic
target, mode = sys.argv[1:]
if mode == "named":
    _atomic._open_unnamed = lambda directory: None
if mode == "before-rename":
    os.replace = lambda a, b: os.kill(os.getpid(), signal.SIGKILL)
def write(out):
    out.write(b"new " * 10000)
    out.flush()
    if mode != "before-rename":
        os.kill(os.getpid(), signal.SIGKILL)
_atomic.write_atomic(target, write)
"""


def _killed_write(target: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(target), mode], env=env, capture_output=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()


def _age(path: Path) -> None:
    """Make ``path`` look older than the sweep's grace period."""
    past = time.time() - 60
    os.utime(path, (past, past))


def _writer(data: bytes):  # type: ignore[no-untyped-def]
    def write(out: IO[bytes]) -> None:
        out.write(data)

    return write


@pytest.mark.parametrize("mode", ["unnamed", "named", "before-rename"])
def test_a_killed_write_keeps_the_old_file_and_the_next_write_leaves_no_debris(
    tmp_path: Path, mode: str
) -> None:
    if mode != "named" and not UNNAMED:
        pytest.skip("no O_TMPFILE here")
    target = tmp_path / "model.ng"
    target.write_bytes(b"old")
    _killed_write(target, mode)
    assert target.read_bytes() == b"old"
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    if mode == "unnamed":
        assert leftovers == []  # an unnamed file dies with its writer
    else:
        (leftover,) = leftovers
        assert leftover.name.startswith(".model.ng.") and leftover.name.endswith(".tmp")
        _age(leftover)
    _atomic.write_atomic(str(target), _writer(b"newer"))
    assert target.read_bytes() == b"newer"
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_failed_write_leaves_the_old_file_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "spec.yaml"
    target.write_bytes(b"old")

    def fail(out: IO[bytes]) -> None:
        out.write(b"half")
        raise RuntimeError("disk on fire")

    for unnamed in (True, False):
        if not unnamed:
            monkeypatch.setattr(_atomic, "_open_unnamed", lambda directory: None)
        with pytest.raises(RuntimeError, match="disk on fire"):
            _atomic.write_atomic(str(target), fail)
        assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def test_a_live_writers_temporary_is_never_swept(tmp_path: Path) -> None:
    target = tmp_path / "model.ng"
    live = Path(_atomic.temporary_sibling(str(target)))
    live.write_bytes(b"being written")
    _age(live)
    other = Path(_atomic.temporary_sibling(str(tmp_path / "other.ng")))
    other.write_bytes(b"another target's")
    _age(other)
    link = tmp_path / live.name.replace(live.name[-16:-4], "0" * 12)
    link.symlink_to(other)
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as its writer does
        assert _atomic.sweep_stale(str(target)) == []
        assert live.exists()
    assert _atomic.sweep_stale(str(target)) == [live.name]
    assert not live.exists() and other.exists() and link.is_symlink()

    fresh = Path(_atomic.temporary_sibling(str(target)))
    fresh.write_bytes(b"its writer may not have locked it yet")
    assert _atomic.sweep_stale(str(target)) == [] and fresh.exists()


@pytest.mark.parametrize("unnamed", [True, False])
def test_the_longest_legal_name_can_be_written_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(_atomic, "_open_unnamed", lambda directory: None)
    for name in ("a" * 252 + ".ng", "é" * 127 + "x"):  # 255 bytes each
        assert len(os.fsencode(name)) == 255
        target = tmp_path / name
        _atomic.write_atomic(str(target), _writer(b"one"))
        _atomic.write_atomic(str(target), _writer(b"two"))
        assert target.read_bytes() == b"two"
        assert len(os.fsencode(Path(_atomic.temporary_sibling(str(target))).name)) <= 255
    assert len(list(tmp_path.iterdir())) == 2


def test_temporaries_of_two_long_names_with_one_prefix_differ(tmp_path: Path) -> None:
    first, second = "a" * 250 + "1", "a" * 250 + "2"
    stem = _atomic._temporary_stem
    assert stem(first) != stem(second)


def test_a_directory_build_is_renamed_into_place_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "served"
    with (
        pytest.raises(RuntimeError, match="builder died"),
        _atomic.temporary_directory_for(str(target)) as building,
    ):
        os.mkdir(building)
        Path(building, "half").write_bytes(b"x")
        raise RuntimeError("builder died")
    assert list(tmp_path.iterdir()) == []
    with _atomic.temporary_directory_for(str(target)) as building:
        assert not os.path.exists(building)  # builders insist on making it
        os.mkdir(building)
        Path(building, "saved_model.pb").write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["served"]
    assert (target / "saved_model.pb").read_bytes() == b"x"


def test_a_stale_directory_build_is_swept(tmp_path: Path) -> None:
    target = tmp_path / "served"
    stale = Path(_atomic.temporary_sibling(str(target)))
    (stale / "building").mkdir(parents=True)
    _age(stale)
    with _atomic.temporary_directory_for(str(target)) as building:
        os.mkdir(building)
    assert [p.name for p in tmp_path.iterdir()] == ["served"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_read_limited_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO"):
        _atomic.read_limited(fifo, 100)
    with pytest.raises(ng.SpecError, match="spec.yaml: cannot read: is a FIFO"):
        ng.load_spec(fifo)


class Net(ng.GraphConvertible):
    pass


def test_save_and_export_to_a_scheme_path_give_loadable_results(tmp_path: Path) -> None:
    directory = "ram://nestgraph-test-atomic/"
    tf.io.gfile.makedirs(directory)
    try:
        with tf.Graph().as_default():
            net = Net()
            net.x = tf1.placeholder(tf.float32, [None, 3], name="x")
            net.w = tf1.get_variable("w", [3, 2])
            net.out = tf.matmul(net.x, net.w, name="out")
            with tf1.Session() as session:
                session.run(tf1.global_variables_initializer())
                ng.save(net, session, directory + "m.ng")
                ng.save(net, session, directory + "m.ng")  # over an existing one
                ng.export_saved_model(
                    net, session, directory + "served", inputs={"x": "x"}, outputs={"y": "out"}
                )
                weights = session.run(net.w)
        assert tf.io.gfile.listdir(directory) == ["m.ng", "served"]
        loaded, loaded_session = ng.load(directory + "m.ng")
        with loaded_session:
            assert (loaded_session.run(loaded.w) == weights).all()
        with tf.Graph().as_default(), tf1.Session() as session:
            tf1.saved_model.loader.load(session, ["serve"], directory + "served")
            assert (session.run("w/Read/ReadVariableOp:0") == weights).all()
    finally:
        tf.io.gfile.rmtree(directory)


def test_a_scheme_no_file_system_handles_is_refused_before_writing() -> None:
    with tf.Graph().as_default():
        net = Net()
        net.x = tf1.placeholder(tf.float32, [None, 3], name="x")
        net.out = tf.identity(net.x, name="out")
        with tf1.Session() as session:
            with pytest.raises(ng.BundleError, match="nosuch://b/m.ng: no file system handles"):
                ng.save(net, session, "nosuch://b/m.ng")
            with pytest.raises(ng.BundleError, match="nosuch://b/served: no file system"):
                ng.export_saved_model(
                    net, session, "nosuch://b/served", inputs={"x": "x"}, outputs={"y": "out"}
                )
    with pytest.raises(ng.BundleError, match="scheme 'nosuch'"):
        _atomic.write_atomic("nosuch://b/spec.yaml", _writer(b"x"))
