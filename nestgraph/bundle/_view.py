"""A checkpoint TensorFlow can restore from, made of a bundle's stored bytes.

A bundle's checkpoint lives inside the zip, where ``RestoreV2`` cannot open
it. Rather than copy the whole checkpoint out, a load writes a small *view*:
an index of only the entries it needs, all pointing into one data file.

- For a bundle that is a local file, the data file is a symbolic link to the
  bundle itself and the entries' offsets are moved by where each shard is
  stored: nothing is copied, and only the needed tensors are ever read.
- Otherwise (bytes, file objects, ``scheme://`` paths) the needed tensors'
  bytes are copied, chunk by chunk, into one ``ram://`` file.

Either way TensorFlow checks each tensor's CRC-32C (stored in the index, which
the manifest's SHA-256 covers) when it reads it, so every byte restored is
verified, and a tensor that points outside its shard is refused here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import tensorflow as tf

from nestgraph.bundle._checkpoint import CHECKPOINT_PREFIX, ram_directory
from nestgraph.bundle._tensorbundle import CheckpointIndex
from nestgraph.bundle._zipstream import StoredMember
from nestgraph.errors import BundleError

__all__ = ["checkpoint_view"]

_DATA_FILE = CHECKPOINT_PREFIX + ".data-00000-of-00001"
_CHUNK = 8 << 20


def _shard_locator(index: CheckpointIndex, prefix: str, shards: Mapping[str, StoredMember]) -> Any:
    count = index.header.num_shards

    def locate(key: str, entry: Any) -> StoredMember:
        name = f"{prefix}.data-{entry.shard_id:05d}-of-{count:05d}"
        shard = shards.get(name)
        if shard is None or entry.offset < 0 or entry.offset + entry.size > shard.size:
            raise BundleError(
                f"corrupt bundle: checkpoint entry {key!r} lies outside its data shard {name}"
            )
        return shard

    return locate


@contextlib.contextmanager
def checkpoint_view(
    index: CheckpointIndex,
    entries: Mapping[str, Any],
    prefix: str,
    shards: Mapping[str, StoredMember],
    source: IO[bytes],
    *,
    bundle_path: str | None = None,
) -> Iterator[str]:
    """Yield a checkpoint prefix from which ``entries`` (``{key: BundleEntryProto}``) restore.

    ``source`` is the bundle as a seekable binary file. With ``bundle_path`` (a
    local file) the view links to it; without, or where links cannot be made,
    the needed bytes are copied from ``source`` to ``ram://``. The view is
    deleted on exit.
    """
    locate = _shard_locator(index, prefix, shards)
    if bundle_path is not None:
        with contextlib.ExitStack() as stack:
            try:
                linked = stack.enter_context(_linked_view(index, entries, locate, bundle_path))
            except OSError:  # no symbolic links here: copy instead
                linked = None
            if linked is not None:
                yield linked
                return
    with ram_directory() as directory:
        with tf.io.gfile.GFile(directory + _DATA_FILE, "wb") as out:
            written = 0

            def copy(key: str, entry: Any) -> int:
                nonlocal written
                shard = locate(key, entry)
                source.seek(shard.offset + entry.offset)
                left = entry.size
                while left:
                    chunk = source.read(min(left, _CHUNK))
                    if not chunk:
                        raise BundleError(f"corrupt bundle: checkpoint entry {key!r} is truncated")
                    out.write(chunk)
                    left -= len(chunk)
                offset, written = written, written + entry.size
                return offset

            view_index = index.view(entries, copy)
        with tf.io.gfile.GFile(directory + CHECKPOINT_PREFIX + ".index", "wb") as f:
            f.write(view_index)
        yield directory + CHECKPOINT_PREFIX


@contextlib.contextmanager
def _linked_view(
    index: CheckpointIndex, entries: Mapping[str, Any], locate: Any, bundle_path: str
) -> Iterator[str]:
    view = index.view(entries, lambda key, entry: locate(key, entry).offset + entry.offset)
    directory = tempfile.mkdtemp(prefix="nestgraph-view-")
    try:
        os.symlink(os.path.abspath(bundle_path), os.path.join(directory, _DATA_FILE))
        with open(os.path.join(directory, CHECKPOINT_PREFIX + ".index"), "wb") as f:
            f.write(view)
        yield os.path.join(directory, CHECKPOINT_PREFIX)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
