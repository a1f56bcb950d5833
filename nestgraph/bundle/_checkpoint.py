"""Checkpoints: save a session's variables to files, restore them with our own ops.

Saving uses one sharded ``Saver`` per graph and variable set, made on first use
and then reused: the cache holds only the ``SaverDef`` (names, no graph
objects) under a weak reference to the graph, and ``Saver(saver_def=...)``
rebuilds a saver from it without adding anything. The checkpoint is written
to a staging directory (``ram://`` for in-memory bundles, a hidden directory
beside the target for files) and streamed into the bundle from there.

Restoring never runs the bundle's ``saver_def``: nestgraph builds a
``RestoreV2`` over the checkpoint keys of the variables it imported and one
assign per variable, checks every variable's dtype and shape against the
checkpoint index first, checks the closure of what it will run, and runs it
with an operation timeout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import tensorflow as tf

from nestgraph import _atomic
from nestgraph.bundle import _runcheck
from nestgraph.errors import BundleError

__all__ = [
    "CHECKPOINT_PREFIX",
    "OPERATION_TIMEOUT_MS",
    "came_from_bundle",
    "check_against_index",
    "checkpoint_keys",
    "initialize_local",
    "mark_loaded",
    "ram_directory",
    "restore",
    "saved_files",
    "saver_for",
]

tf1 = tf.compat.v1

CHECKPOINT_PREFIX = "model"
# A restore reads at most the bundle's bytes from a local or in-memory file; five
# minutes is far beyond that, and stops a load that hangs on a file that never ends.
OPERATION_TIMEOUT_MS = 300_000

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
            "call nestgraph.save (or dumps) once before finalizing the graph"
        )
    with graph.as_default():
        saver = tf1.train.Saver(sharded=True, allow_empty=True)
    _SAVERS[graph] = (key, saver.as_saver_def())
    return saver


def _staging_directory(beside: str | None) -> str:
    if beside is None or _atomic.is_remote(beside):
        return f"ram://nestgraph-{uuid.uuid4().hex}/"
    return _atomic.temporary_sibling(beside) + "/"


@contextlib.contextmanager
def saved_files(session: Any, saver: Any, beside: str | None = None) -> Iterator[dict[str, Any]]:
    """Save the variables; yield ``{checkpoint file name: open binary file}``.

    With a local ``beside`` path, the files are written to a hidden directory
    next to it (the same disk the bundle goes to, so nothing is held in
    memory); otherwise to ``ram://``. Local files are unlinked as soon as they
    are open, so a killed process leaves no staging directory behind.
    """
    directory = _staging_directory(beside)
    local = not _atomic.is_remote(directory)
    files: dict[str, Any] = {}
    try:
        if local:
            os.mkdir(directory, 0o700)
        else:
            tf.io.gfile.makedirs(directory)
        # Savers run in graph mode only inside their graph's context.
        with session.graph.as_default():
            saver.save(
                session, directory + CHECKPOINT_PREFIX, write_meta_graph=False, write_state=False
            )
        names = os.listdir(directory) if local else tf.io.gfile.listdir(directory)
        for name in sorted(names):
            if name.startswith(CHECKPOINT_PREFIX + "."):
                path = directory + name
                files[name] = open(path, "rb") if local else tf.io.gfile.GFile(path, "rb")  # noqa: SIM115
        if local:
            shutil.rmtree(directory)
        yield files
    finally:
        for file in files.values():
            file.close()
        if local:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            with contextlib.suppress(tf.errors.NotFoundError):
                tf.io.gfile.rmtree(directory)


# --------------------------------------------------------------------------- restoring


def _var_list(variables: Sequence[Any]) -> dict[str, Any]:
    """``{checkpoint key: variable or list of its slices}`` as the default Saver names them."""
    var_list: dict[str, Any] = {}
    for variable in variables:
        slice_info = getattr(variable, "_save_slice_info", None)
        if slice_info is not None:
            var_list.setdefault(slice_info.full_name, []).append(variable)
        else:
            var_list[variable.op.name] = variable
    return var_list


def checkpoint_keys(variables: Sequence[Any]) -> list[str]:
    """The checkpoint keys ``variables`` are saved under."""
    return list(_var_list(variables))


def _describe(dtype: Any, shape: Any) -> str:
    return f"{dtype.name} {tuple(shape.as_list()) if shape.rank is not None else '(unknown)'}"


def check_against_index(
    variables: Sequence[Any], entries: Mapping[str, Any], paths: Mapping[str, str]
) -> None:
    """Raise ``BundleError`` unless the checkpoint holds every variable with its dtype and shape.

    ``entries`` maps checkpoint keys to ``BundleEntryProto``; ``paths`` maps a
    variable's op name to its dotted spec path, for the message.
    """
    var_list = _var_list(variables)
    missing = sorted(key for key in var_list if key not in entries)
    if missing:
        raise BundleError(f"variable(s) not in the bundle's checkpoint: {', '.join(missing)}")
    problems, first_path = [], None
    for key, variable in var_list.items():
        entry = entries[key]
        if isinstance(variable, list):
            first = variable[0]
            dtype = first.dtype.base_dtype
            shape = tf.TensorShape(first._save_slice_info.full_shape)
        else:
            dtype, shape = variable.dtype.base_dtype, variable.shape
        try:
            stored_dtype = tf.dtypes.as_dtype(entry.dtype)
        except TypeError:
            stored_dtype = None
        stored_shape = tf.TensorShape(entry.shape)
        if stored_dtype != dtype or not stored_shape.is_compatible_with(shape):
            where = paths.get(key)
            first_path = first_path or where
            label = f"{where}: variable {key!r}" if where else f"variable {key!r}"
            stored = (
                _describe(stored_dtype, stored_shape)
                if stored_dtype is not None
                else f"dtype {entry.dtype} {stored_shape}"
            )
            problems.append(
                f"{label} is {_describe(dtype, shape)} in the graph but {stored} in the checkpoint"
            )
    if problems:
        error = BundleError("checkpoint and graph disagree: " + "; ".join(problems))
        error.path = first_path
        raise error


def _run(session: Any, fetch: Any, feed_dict: Mapping[Any, Any] | None = None) -> None:
    options = tf1.RunOptions(timeout_in_ms=OPERATION_TIMEOUT_MS)
    session.run(fetch, feed_dict=feed_dict, options=options)


def restore(session: Any, variables: Sequence[Any], prefix: str) -> None:
    """Restore ``variables`` from the checkpoint at ``prefix`` with ops built here.

    The ops (one ``RestoreV2`` fed the prefix, one assign per variable) are added
    to the session's graph under ``nestgraph_restore``; nothing of the graph's
    own save or restore ops runs.
    """
    graph = session.graph
    var_list = _var_list(variables)
    names, slices, dtypes, targets = [], [], [], []
    for key, variable in var_list.items():
        for part in variable if isinstance(variable, list) else [variable]:
            info = getattr(part, "_save_slice_info", None)
            names.append(key)
            slices.append(info.spec if info is not None else "")
            dtypes.append(part.dtype.base_dtype)
            targets.append(part)
    with graph.as_default(), tf.name_scope("nestgraph_restore"):
        filename = tf1.placeholder(tf.string, [], name="filename")
        with tf.device("/device:CPU:0"):
            values = tf.raw_ops.RestoreV2(
                prefix=filename,
                tensor_names=tf.constant(names, tf.string),
                shape_and_slices=tf.constant(slices, tf.string),
                dtypes=dtypes,
            )
        assigns = []
        for variable, value in zip(targets, values, strict=True):
            with tf.device(variable.device):
                if variable.dtype._is_ref_dtype or not hasattr(variable, "handle"):
                    assigns.append(tf1.assign(variable, value, validate_shape=False).op)
                else:
                    assigns.append(
                        tf.raw_ops.AssignVariableOp(resource=variable.handle, value=value)
                    )
        restore_op = tf.group(*assigns, name="restore_all")
    _runcheck.check_runnable(
        [restore_op], _runcheck.RESTORE_OPS, "restoring the checkpoint", feeds=[filename]
    )
    _run(session, restore_op, {filename: prefix})


def initialize_local(session: Any, variables: Sequence[Any], paths: Mapping[str, str]) -> None:
    """Start local variables (metrics, counters; never saved) from their initial values.

    Only initializers built from constants and the ops in
    ``_runcheck.INITIALIZER_OPS`` run; any other is refused, naming the variable.
    """
    for variable in variables:
        where = paths.get(variable.op.name)
        what = f"local variable {variable.op.name!r}"
        _runcheck.check_runnable(
            [variable.initializer], _runcheck.INITIALIZER_OPS, f"{where}: {what}" if where else what
        )
    _run(session, [v.initializer for v in variables])
