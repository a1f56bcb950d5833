"""Atomic writes: the target is either the old file or the complete new one.

Local paths get a temporary file in the target's directory (same file system,
so ``os.replace`` is atomic), written, flushed and fsynced before the rename.
Paths with a scheme (``gs://``, ``ram://``, ...) go through ``tf.io.gfile``:
the bytes are written to a temporary name next to the target, then renamed
over it, which is as atomic as the file system's rename.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from typing import IO

__all__ = [
    "irregular_kind",
    "is_remote",
    "not_regular",
    "read_limited",
    "temporary_directory_for",
    "temporary_sibling",
    "write_atomic",
]


def is_remote(path: str) -> bool:
    """True for paths TensorFlow's file systems handle (``scheme://...``)."""
    return "://" in path


def not_regular(path: str) -> str | None:
    """Why the local ``path`` is no file to read (``"a FIFO (named pipe)"``), or None.

    Checked with ``stat`` before anything opens it: opening a FIFO blocks until a
    writer comes, and ``/dev/zero`` never ends; only a regular file has a size.
    A missing path gives None, so the caller's own open reports it.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return irregular_kind(mode)


def irregular_kind(mode: int) -> str | None:
    """What a ``st_mode`` that is not a regular file's is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``; ``ValueError`` if it is not a regular file or holds more
    than ``limit`` bytes."""
    path = os.fspath(path)
    if not is_remote(path):
        kind = not_regular(path)
        if kind is not None:
            raise ValueError(f"is {kind}, not a regular file")
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as remote:
            data: bytes = remote.read(limit + 1)
    else:
        with open(path, "rb") as local:
            data = local.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than the {limit} byte limit")
    return data


def temporary_sibling(path: str) -> str:
    """An unused name next to ``path`` for a file or directory being built."""
    head, tail = os.path.split(path.rstrip("/"))
    name = f".{tail}.{uuid.uuid4().hex[:12]}.tmp"
    return f"{head}/{name}" if is_remote(path) else os.path.join(head, name)


def write_atomic(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file, then move it onto ``path``.

    If ``write`` (or anything before the rename) fails, the temporary file is
    removed and ``path`` is left as it was.
    """
    if is_remote(path):
        _write_remote(path, write)
    else:
        _write_local(path, write)


def _write_local(path: str, write: Callable[[IO[bytes]], None]) -> None:
    temporary = temporary_sibling(path)
    # os.open applies the umask, so the bundle gets the same mode a plain open() would.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_remote(path: str, write: Callable[[IO[bytes]], None]) -> None:
    import io

    import tensorflow as tf

    buffer = io.BytesIO()
    write(buffer)
    temporary = temporary_sibling(path)
    try:
        with tf.io.gfile.GFile(temporary, "wb") as out:
            out.write(buffer.getvalue())
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(Exception):
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
        raise


@contextlib.contextmanager
def temporary_directory_for(path: str) -> Iterator[str]:
    """A fresh directory next to ``path``; on success it is renamed onto ``path``.

    ``path`` must not exist (or be an empty local directory). On failure the
    temporary directory is deleted.
    """
    import shutil

    import tensorflow as tf

    temporary = temporary_sibling(path)
    try:
        yield temporary
        if is_remote(path):
            tf.io.gfile.rename(temporary, path.rstrip("/"), overwrite=False)
        else:
            os.replace(temporary, path.rstrip("/"))
    except BaseException:
        with contextlib.suppress(Exception):
            if is_remote(path):
                if tf.io.gfile.exists(temporary):
                    tf.io.gfile.rmtree(temporary)
            else:
                shutil.rmtree(temporary, ignore_errors=True)
        raise
