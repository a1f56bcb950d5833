"""The zip CRC-32 on every core: crc32_combine against zlib, files split across threads."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestgraph.bundle import _crc
from nestgraph.bundle._crc import GrowingFiles, crc32_combine, crc32_file, watching


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_combining_two_checksums_is_the_checksum_of_both(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_combining_across_a_large_length_matches_zlib() -> None:
    # Only the length of the second part matters to the operator: a long run of zeros.
    second = bytes(5_000_003)
    first = os.urandom(100)
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(
        first + second
    )


@settings(max_examples=50, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=20_000),
    threads=st.integers(1, 4),
    start=st.integers(0, 50),
)
def test_a_file_split_across_threads_has_the_checksum_of_its_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, threads: int, start: int
) -> None:
    path = tmp_path_factory.mktemp("crc") / "shard"
    path.write_bytes(bytes(start) + data)
    fd = os.open(path, os.O_RDONLY)
    try:
        # Small chunks, so several threads and several reads per thread happen.
        saved = _crc._CHUNK
        _crc._CHUNK = 1024
        try:
            assert crc32_file(fd, start, len(data), threads) == zlib.crc32(data)
        finally:
            _crc._CHUNK = saved
    finally:
        os.close(fd)


def test_the_default_split_uses_both_cores_on_a_large_file(tmp_path: Path) -> None:
    data = os.urandom(3 << 20) * 24  # 72 MiB: at least two spans of 32 MiB
    path = tmp_path / "shard"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert crc32_file(fd, 0, len(data)) == zlib.crc32(data)
    finally:
        os.close(fd)


def test_a_file_shorter_than_promised_is_an_os_error(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    path.write_bytes(b"short")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="file ended 5 bytes early"):
            crc32_file(fd, 0, 10)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- as TensorFlow writes


def _write_slowly(path: Path, chunks: list[bytes], final: Path) -> None:
    with open(path, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            out.flush()
            time.sleep(0.001)
    os.replace(path, final)  # as TensorFlow renames its .tempstate file


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=12))
def test_growing_files_checksum_what_was_written(chunks: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "model_temp").mkdir()
        temporary = directory / "model_temp" / "part.data-00000-of-00001.tempstate7"
        final = directory / "model.data-00000-of-00001"
        (directory / "model.index").write_bytes(b"not watched")
        with watching(str(directory)) as found:
            writer = threading.Thread(target=_write_slowly, args=(temporary, chunks, final))
            writer.start()
            writer.join()
        data = b"".join(chunks)
        inode = os.stat(final).st_ino
        assert found[inode] == (len(data), zlib.crc32(data))
        assert os.stat(directory / "model.index").st_ino not in found


def test_a_file_that_shrinks_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "x.data-00000-of-00001"
    path.write_bytes(b"a" * 5000)
    watcher = GrowingFiles(str(tmp_path))
    time.sleep(0.05)  # it has read all 5000 bytes
    path.write_bytes(b"b" * 10)  # truncated and rewritten: not how TensorFlow writes
    time.sleep(0.05)
    assert os.stat(path).st_ino not in watcher.finish()


def test_a_save_uses_the_crcs_taken_while_tensorflow_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tensorflow as tf

    import nestgraph as ng
    from nestgraph.bundle import _zerocopy

    def refuse(*_: object) -> int:
        raise AssertionError("the shard was read again for its CRC-32")

    monkeypatch.setattr(_zerocopy, "crc32_file", refuse)
    graph = tf.Graph()
    with graph.as_default():
        weights = tf.compat.v1.get_variable("w", [300, 300])
        session = tf.compat.v1.Session()
        session.run(tf.compat.v1.global_variables_initializer())
    ng.save({"w": weights}, session, tmp_path / "m.ng")
    with zipfile.ZipFile(tmp_path / "m.ng") as archive:
        assert archive.testzip() is None
    model, loaded = ng.load(tmp_path / "m.ng")
    np.testing.assert_array_equal(loaded.run(model["w"]), session.run(weights))
    loaded.close()
    session.close()
