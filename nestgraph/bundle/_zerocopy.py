"""Saving a bundle without copying the weights: the staged data shard becomes the bundle.

TensorFlow writes the checkpoint into a staging directory beside the target
(``_checkpoint.saved_files``), so its largest data shard already lies on the
target's file system, holding exactly the bytes the bundle's last member
holds. ``write_bundle`` lays the bundle out (``_zipstream.plan``: that shard
last, its data starting at a multiple of ``ALIGN``), inserts that many bytes
of hole at the front of the shard file (``fallocate(FALLOC_FL_INSERT_RANGE)``,
ext4 and xfs), writes everything before the shard's data into the hole and the
central directory after it, fsyncs, and renames the file onto the target.

While the shard's CRC-32 (the zip needs it) is computed on every core, the
kernel is already writing the shard back (``sync_file_range``), so the final
fsync has little left to do. Where the file system cannot insert a range
(tmpfs, btrfs, ...), the same bytes are copied into a new file
(``_zipstream.pack_streamed`` through ``_atomic.write_atomic``), reusing the
CRC-32s. Either way the target is the old file or the complete new one: the
staging directory is locked while it exists and swept after a crash.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from nestgraph import _atomic
from nestgraph.bundle import _zipstream
from nestgraph.bundle._crc import crc32_file

__all__ = ["insert_range", "start_writeback", "write_bundle"]

_FALLOC_FL_INSERT_RANGE = 0x20
_SYNC_FILE_RANGE_WRITE = 2
# fallocate's answers for "this file system (or kernel) cannot insert a range here".
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})
_COPY_CHUNK = 8 << 20


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to ask
        return None


def _function(name: str, *argtypes: Any) -> Any:
    libc = _libc()
    function = getattr(libc, name, None) if libc is not None else None
    if function is not None:
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    return function


def insert_range(fd: int, length: int) -> bool:
    """Insert ``length`` bytes (a multiple of the block size) of hole at the start of ``fd``.

    Returns False, with the file unchanged, where the file system or the OS
    cannot; raises ``OSError`` for any other failure (a full disk).
    """
    fallocate = _function("fallocate", ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if fallocate is None:
        return False
    if fallocate(fd, _FALLOC_FL_INSERT_RANGE, 0, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, f"cannot make room for the bundle's header: {os.strerror(code)}")


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages back, without waiting."""
    sync_file_range = _function(
        "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
    )
    if sync_file_range is not None:
        sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # advice: failure changes nothing


def write_bundle(
    target: str,
    members: Sequence[tuple[str, bytes]],
    checkpoint: Mapping[str, Any],
    prefix: str | None,
    versions: Mapping[str, str],
    known_crcs: Mapping[str, int] | None = None,
) -> None:
    """Write the bundle of ``members`` and the staged ``checkpoint`` onto the local ``target``.

    Arguments as for ``_zipstream.pack_streamed``; the checkpoint's files come
    from ``_checkpoint.saved_files`` (each ``name`` its path in the staging
    directory), ``known_crcs`` the CRC-32s it computed while TensorFlow wrote
    them (the others are computed here). The largest data shard's file is
    consumed: it becomes the bundle.
    """
    known = known_crcs or {}
    layout = _zipstream.plan(members, checkpoint, prefix, versions)
    base = layout.base
    staged = getattr(checkpoint[base.source], "name", None) if base is not None else None
    if base is None or not isinstance(staged, str) or not os.path.isabs(staged):
        _copy(target, members, checkpoint, prefix, versions, None)
        return
    fd = os.open(staged, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    try:
        # sync_file_range blocks while the disk's queue is full: on a thread of its
        # own, the writeback runs beside the CRC-32 pass (which reads the page cache).
        writeback = threading.Thread(
            target=start_writeback, args=(fd,), name="nestgraph-writeback", daemon=True
        )
        writeback.start()
        try:
            crcs = {
                shard.source: known[shard.source]
                if shard.source in known
                else crc32_file(checkpoint[shard.source].fileno(), 0, shard.size)
                for shard in layout.shards
            }
        finally:
            writeback.join()
        if os.fstat(fd).st_size != base.size or not insert_range(fd, layout.prefix_size):
            os.close(fd)
            fd = -1
            _copy(target, members, checkpoint, prefix, versions, crcs)
            return
        for shard in layout.shards:
            shard.crc = crcs[shard.source]
        _fill(fd, layout, checkpoint)
        os.fsync(fd)
    finally:
        if fd >= 0:
            os.close(fd)
    _atomic.move_into_place(staged, target)


def _copy(
    target: str,
    members: Sequence[tuple[str, bytes]],
    checkpoint: Mapping[str, Any],
    prefix: str | None,
    versions: Mapping[str, str],
    crcs: Mapping[str, int] | None,
) -> None:
    def pack(out: Any) -> None:
        _zipstream.pack_streamed(members, checkpoint, prefix, out, versions, crcs)

    _atomic.write_atomic(target, pack)


def _fill(fd: int, layout: _zipstream.Layout, checkpoint: Mapping[str, Any]) -> None:
    """Write everything but the last shard's data: the hole in front of it, and the end."""
    base = layout.members[-1]
    if base.data_offset != layout.prefix_size or layout.prefix_size % _zipstream.ALIGN:
        raise AssertionError("the bundle's layout does not fit the inserted range")
    for member in layout.members:
        _write_all(fd, layout.render(member), member.offset)
        if member.data is None and member is not base:
            _copy_range(checkpoint[member.source].fileno(), fd, member.size, member.data_offset)
    _write_all(fd, layout.central_directory(), layout.prefix_size + base.size)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _copy_range(source: int, fd: int, size: int, offset: int) -> None:
    """Copy a smaller shard (all of ``source``) into the hole at ``offset``."""
    copied = 0
    kernel = hasattr(os, "copy_file_range")
    buffer = bytearray(0 if kernel else _COPY_CHUNK)
    while copied < size:
        if kernel:
            try:
                count = os.copy_file_range(source, fd, size - copied, copied, offset + copied)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                kernel = False
                buffer = bytearray(_COPY_CHUNK)
                continue
        else:
            count = os.preadv(source, [memoryview(buffer)[: size - copied]], copied)
            _write_all(fd, memoryview(buffer)[:count], offset + copied)
        if count <= 0:
            raise OSError(f"a checkpoint shard ended early ({copied} of {size} bytes)")
        copied += count
