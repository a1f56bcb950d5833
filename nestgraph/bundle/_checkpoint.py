"""Checkpoints: save a session's variables to staged files a bundle streams in.

Saving uses one sharded ``Saver`` per graph and variable set, made on first use
and then reused: the cache holds only the ``SaverDef`` (names, no graph
objects) under a weak reference to the graph, and ``Saver(saver_def=...)``
rebuilds a saver from it without adding anything. The checkpoint is written
to a staging directory (``ram://`` for in-memory bundles, a hidden, locked
directory beside the target for files) and becomes part of the bundle from
there (copied, or on a local disk its largest shard becomes the bundle file).

Restoring is ``_restore``'s job: it never runs the bundle's ``saver_def``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from nestgraph import _atomic
from nestgraph.bundle import _crc
from nestgraph.errors import BundleError

__all__ = [
    "CHECKPOINT_PREFIX",
    "came_from_bundle",
    "mark_loaded",
    "ram_directory",
    "saved_files",
    "saver_for",
]

tf1 = tf.compat.v1

CHECKPOINT_PREFIX = "model"

# graph -> (variable-set key, SaverDef). Values hold no reference to the graph,
# so the entry disappears with it.
_SAVERS: weakref.WeakKeyDictionary[Any, tuple[tuple[str, ...], Any]] = weakref.WeakKeyDictionary()
# Graphs imported from a bundle: every later run nestgraph makes in them is checked.
_LOADED: weakref.WeakSet[Any] = weakref.WeakSet()


def mark_loaded(graph: Any) -> None:
    """Remember that ``graph`` holds ops a bundle chose."""
    _LOADED.add(graph)


def came_from_bundle(graph: Any) -> bool:
    """True for a graph ``mark_loaded`` was called on."""
    return graph in _LOADED


@contextlib.contextmanager
def ram_directory() -> Iterator[str]:
    """A new, unique ``ram://`` directory, deleted on exit."""
    directory = f"ram://nestgraph-{uuid.uuid4().hex}/"
    tf.io.gfile.makedirs(directory)
    try:
        yield directory
    finally:
        with contextlib.suppress(tf.errors.NotFoundError):
            tf.io.gfile.rmtree(directory)


# --------------------------------------------------------------------------- saving


def _saveables_key(graph: Any) -> tuple[str, ...]:
    """What a default Saver would cover: global variables plus saveable objects."""
    names = [v.name for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)]
    names.extend(
        f"saveable:{getattr(obj, 'name', id(obj))}"
        for obj in graph.get_collection(tf1.GraphKeys.SAVEABLE_OBJECTS)
    )
    return tuple(names)


def saver_for(graph: Any) -> Any | None:
    """The graph's cached sharded saver over all its variables, made on first use.

    Returns None when the graph has nothing to save. A graph that came from a
    bundle gets a saver of its own on its first save: the bundle's ``saver_def``
    names ops the bundle chose, so it is never reused.
    """
    key = _saveables_key(graph)
    if not key:
        return None
    cached = _SAVERS.get(graph)
    if cached is not None and cached[0] == key:
        with graph.as_default():
            return tf1.train.Saver(saver_def=cached[1])
    if graph.finalized:
        raise BundleError(
            "the graph is finalized, so no saver can be added to it; "
            "call nestgraph.save (or dumps) once before finalizing the graph, or pass "
            "ng.BundleSaverHook to the MonitoredSession, which prepares it in begin()"
        )
    with graph.as_default():
        saver = tf1.train.Saver(sharded=True, allow_empty=True)
    _SAVERS[graph] = (key, saver.as_saver_def())
    return saver


def _staging_directory(beside: str | None) -> str:
    if beside is None or _atomic.is_remote(beside):
        return f"ram://nestgraph-{uuid.uuid4().hex}/"
    # Absolute, so the staged files' names stay valid whatever the working directory.
    return _atomic.temporary_sibling(os.path.abspath(beside)) + "/"


@contextlib.contextmanager
def saved_files(
    session: Any, saver: Any, beside: str | None = None, crcs: dict[str, int] | None = None
) -> Iterator[dict[str, Any]]:
    """Save the variables; yield ``{checkpoint file name: open binary file}``.

    With a local ``beside`` path, the files are written to a hidden directory
    next to it (the same disk the bundle goes to, so nothing is held in
    memory, and a data shard can become the bundle itself: ``_zerocopy``);
    otherwise to ``ram://``. A local file's ``name`` is its path; the
    directory is locked for as long as it exists and removed on exit, so a
    killed process leaves only a directory the next save of ``beside`` sweeps
    (``_atomic.sweep_stale``). With ``crcs``, a local save fills it with the
    CRC-32 of each data shard, computed while TensorFlow wrote it (``_crc.watching``).
    """
    directory = _staging_directory(beside)
    local = not _atomic.is_remote(directory)
    files: dict[str, Any] = {}
    lock = None
    try:
        if local:
            assert beside is not None
            _atomic.sweep_stale(beside)
            os.mkdir(directory, 0o700)
            lock = _atomic.lock_directory(directory)
        else:
            tf.io.gfile.makedirs(directory)
        watch: contextlib.AbstractContextManager[dict[int, tuple[int, int]]]
        watch = contextlib.nullcontext({})
        if local and crcs is not None:
            watch = _crc.watching(directory)
        # Savers run in graph mode only inside their graph's context.
        with watch as written, session.graph.as_default():
            saver.save(
                session, directory + CHECKPOINT_PREFIX, write_meta_graph=False, write_state=False
            )
        names = os.listdir(directory) if local else tf.io.gfile.listdir(directory)
        for name in sorted(names):
            if name.startswith(CHECKPOINT_PREFIX + "."):
                path = directory + name
                files[name] = open(path, "rb") if local else tf.io.gfile.GFile(path, "rb")  # noqa: SIM115
                if written and crcs is not None:
                    status = os.fstat(files[name].fileno())
                    size, crc = written.get(status.st_ino, (-1, 0))
                    if size == status.st_size:
                        crcs[name] = crc
        yield files
    finally:
        for file in files.values():
            file.close()
        if local:
            shutil.rmtree(directory, ignore_errors=True)
            if lock is not None:
                os.close(lock)
        else:
            with contextlib.suppress(tf.errors.NotFoundError):
                tf.io.gfile.rmtree(directory)
