"""Checkpoints in memory: save a session's variables to bytes and restore them.

TensorFlow's savers only write to file systems, so the checkpoint goes through
a private ``ram://`` directory (TensorFlow's in-memory file system) that is
deleted as soon as the bytes are read back. Nothing touches the local disk.

Savers add ops to a graph, so one is made per graph and variable set and then
reused: the cache holds only the ``SaverDef`` (names, no graph objects) under a
weak reference to the graph, and ``Saver(saver_def=...)`` rebuilds a saver from
it without adding anything.
"""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import tensorflow as tf

from nestgraph.errors import BundleError

__all__ = [
    "CHECKPOINT_PREFIX",
    "check_restorable",
    "checkpoint_keys",
    "materialized",
    "ram_directory",
    "remember_saver",
    "restore_saver_for",
    "save",
    "saver_for",
]

tf1 = tf.compat.v1

CHECKPOINT_PREFIX = "model"

# graph -> (variable-set key, SaverDef). Values hold no reference to the graph,
# so the entry disappears with it.
_SAVERS: weakref.WeakKeyDictionary[Any, tuple[tuple[str, ...], Any]] = weakref.WeakKeyDictionary()


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


def _saveables_key(graph: Any) -> tuple[str, ...]:
    """What a default Saver would cover: global variables plus saveable objects."""
    names = [v.name for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)]
    names.extend(
        f"saveable:{getattr(obj, 'name', id(obj))}"
        for obj in graph.get_collection(tf1.GraphKeys.SAVEABLE_OBJECTS)
    )
    return tuple(names)


def remember_saver(graph: Any, saver_def: Any) -> None:
    """Reuse ``saver_def`` for later saves of ``graph`` while its variables do not change."""
    _SAVERS[graph] = (_saveables_key(graph), saver_def)


def saver_for(graph: Any) -> Any | None:
    """The graph's cached sharded saver over all its variables, made on first use.

    Returns None when the graph has nothing to save.
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
            "call nestgraph.save (or dumps) once before finalizing the graph"
        )
    with graph.as_default():
        saver = tf1.train.Saver(sharded=True, allow_empty=True)
    _SAVERS[graph] = (key, saver.as_saver_def())
    return saver


def _var_list(variables: Sequence[Any]) -> dict[str, Any]:
    """``{checkpoint key: variable}`` as the default Saver names them.

    A partitioned variable's slices are grouped under their full name.
    """
    var_list: dict[str, Any] = {}
    for variable in variables:
        slice_info = getattr(variable, "_save_slice_info", None)
        if slice_info is not None:
            var_list.setdefault(slice_info.full_name, []).append(variable)
        else:
            var_list[variable.op.name] = variable
    return var_list


def check_restorable(variables: Sequence[Any], available: Mapping[str, Any]) -> None:
    """Raise ``BundleError`` naming every variable the checkpoint (``{key: shape}``) lacks."""
    missing = sorted(key for key in _var_list(variables) if key not in available)
    if missing:
        raise BundleError(f"variable(s) not in the bundle's checkpoint: {', '.join(missing)}")


def restore_saver_for(variables: Sequence[Any]) -> Any:
    """A sharded saver restoring ``variables`` under the keys they were saved with."""
    return tf1.train.Saver(var_list=_var_list(variables), sharded=True, allow_empty=True)


def save(session: Any, saver: Any) -> dict[str, bytes]:
    """Run ``saver`` in ``session``; return the checkpoint files by name."""
    # Savers run in graph mode only inside their graph's context.
    with ram_directory() as directory, session.graph.as_default():
        saver.save(
            session, directory + CHECKPOINT_PREFIX, write_meta_graph=False, write_state=False
        )
        files = {}
        for name in tf.io.gfile.listdir(directory):
            if name.startswith(CHECKPOINT_PREFIX + "."):
                with tf.io.gfile.GFile(directory + name, "rb") as f:
                    files[name] = f.read()
    return files


@contextlib.contextmanager
def materialized(files: Mapping[str, bytes], prefix: str) -> Iterator[str]:
    """The checkpoint ``files`` written to a private ``ram://`` directory.

    Yields the checkpoint prefix to pass to ``Saver.restore``; the directory is
    deleted on exit.
    """
    with ram_directory() as directory:
        for name, data in files.items():
            with tf.io.gfile.GFile(directory + name, "wb") as f:
                f.write(data)
        yield directory + prefix


def checkpoint_keys(prefix_path: str) -> dict[str, Any]:
    """``{key: shape}`` of the checkpoint at ``prefix_path``, read from its index."""
    reader = tf1.train.NewCheckpointReader(prefix_path)
    shapes: dict[str, Any] = reader.get_variable_to_shape_map()
    return shapes
