"""The zip CRC-32 on every core: crc32_combine against zlib, files split across threads."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestgraph.bundle import _crc
from nestgraph.bundle._crc import crc32_combine, crc32_file


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
