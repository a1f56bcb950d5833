"""Reading and atomically writing whole files, local or through ``tf.io.gfile``.

Paths with a scheme (``ram://``, ``gs://``) go through TensorFlow's file
system layer; local paths use Python's own, so reading a spec never needs
TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

__all__ = ["atomic_write", "is_remote", "read_limited"]


def is_remote(path: str) -> bool:
    return "://" in path


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never a part.

    The bytes go to a temporary file beside the target, are flushed to disk, and
    the temporary file is renamed over the target. On any failure the temporary
    file is removed and the target is untouched.
    """
    path = os.fspath(path)
    if is_remote(path):
        gfile = _gfile()
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with gfile.GFile(tmp, "wb") as f:
                f.write(data)
            gfile.rename(tmp, path, overwrite=True)
        except BaseException:
            if gfile.exists(tmp):
                gfile.remove(tmp)
            raise
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``; ``ValueError`` if it holds more than ``limit`` bytes."""
    path = os.fspath(path)
    if is_remote(path):
        with _gfile().GFile(path, "rb") as f:
            data: bytes = f.read(limit + 1)
    else:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than the {limit} byte limit")
    return data
