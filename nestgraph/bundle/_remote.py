"""Checkpoints of a session on a cluster, written and read on the client's side.

On a cluster a ``Saver``'s save ops run on the tasks holding the variables
(the parameter servers) and write into *their* file systems: with the ps tasks
in other processes, a ``ram://`` or staging directory of the client gets
nothing, and the bundle would hold no weights. Restore ops placed on a remote
task likewise read files only that task's process can see.

So for a cluster session the values travel through the session instead: a save
fetches every variable (an existing snapshot, no op is added) and writes the
checkpoint with a ``SaveV2`` in a small graph of the client's own; a restore
runs a copy of the load's ``RestoreV2`` in such a graph and feeds its outputs
to the load's assigns in the cluster graph (a fed ``RestoreV2`` does not run).
Partitioned variables are written as TensorFlow's ``Saver`` writes them, as
slices of one full-shape key, so they restore into any number of partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import tensorflow as tf

from nestgraph.bundle import _checkpoint, _restore, _runcheck
from nestgraph.errors import BundleError

__all__ = ["CHUNK_BYTES", "ClientSaver", "needs_client", "run_restore", "write_checkpoint"]

tf1 = tf.compat.v1
T = TypeVar("T")

try:  # How a default Saver names each variable (one key per partitioned variable).
    from tensorflow.python.training.saving.saveable_object_util import (
        op_list_to_dict as _op_list_to_dict,
    )
except ImportError:  # pragma: no cover - fallback for a future TensorFlow
    _op_list_to_dict = None


def _on_cluster(device: str) -> bool:
    job = tf.DeviceSpec.from_string(device or "").job
    return job is not None and job != "localhost"


def needs_client(session: Any, variables: Sequence[Any]) -> bool:
    """Whether checkpoints of ``session`` must be written and read on the client's side.

    True for a session on a cluster target, and for variables placed on a
    cluster job whatever the session (a wrapped or monitored session hides its
    target, but not its graph).
    """
    if getattr(session, "sess_str", ""):
        return True
    return any(_on_cluster(v.device) for v in variables)


def _keyed(variables: Sequence[Any]) -> list[tuple[str, str, Any]]:
    """``(checkpoint key, slice spec, variable)`` for each variable, as the Saver names them."""
    named: dict[str, Any] = {}
    if _op_list_to_dict is not None:
        named = _op_list_to_dict(list(variables))
    else:  # pragma: no cover
        for variable in variables:
            info = getattr(variable, "_save_slice_info", None)
            if info is None:
                named[variable.op.name] = variable
            else:
                named.setdefault(info.full_name, []).append(variable)
    keyed = []
    for key, value in named.items():
        for part in value if isinstance(value, list) else [value]:
            info = getattr(part, "_save_slice_info", None)
            keyed.append((key, info.spec if info is not None else "", part))
    return keyed


def _run_timeout(session: Any, fetches: Any, feed_dict: Any = None) -> Any:
    options = tf1.RunOptions(timeout_in_ms=_restore.OPERATION_TIMEOUT_MS)
    return session.run(fetches, feed_dict=feed_dict, options=options)


def _gist(exc: Exception) -> str:
    """The line of a TensorFlow error that says what went wrong (its last, bar node lists)."""
    message = getattr(exc, "message", None) or str(exc)
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip() and not line.lstrip().startswith("[[")
    ]
    return lines[-1] if lines else message


class ClientSaver:
    """Duck-typed like ``Saver.save``: fetch the values, write the checkpoint here.

    Covers what a default Saver covers (the global variables); a graph with
    other saveable objects (``SAVEABLE_OBJECTS``, e.g. lookup tables) is refused.
    """

    def __init__(self, graph: Any) -> None:
        if graph.get_collection(tf1.GraphKeys.SAVEABLE_OBJECTS):
            raise BundleError(
                "saving from a cluster session writes the checkpoint on the client, which "
                "supports variables only; this graph also has SAVEABLE_OBJECTS "
                "(e.g. lookup tables)"
            )
        self._variables = graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)

    def save(self, session: Any, prefix: str, **_: Any) -> str:
        keyed = _keyed(self._variables)
        if _checkpoint.came_from_bundle(session.graph):
            parts = [part for _, _, part in keyed]
            _runcheck.check_runnable(parts, _runcheck.READ_OPS, "reading the variables to save")
        chunks = _chunks(keyed, [_nbytes(part) for _, _, part in keyed], CHUNK_BYTES)
        if len(chunks) == 1:
            write_checkpoint(prefix, chunks[0], _fetch(session, chunks[0]))
            return prefix
        # One shard per chunk, merged as a sharded Saver merges its per-device shards:
        # the client holds one chunk's values at a time, not the whole model's.
        shards = [
            f"{prefix}_temp_nestgraph/part-{number:05d}-of-{len(chunks):05d}"
            for number in range(len(chunks))
        ]
        for shard, chunk in zip(shards, chunks, strict=True):
            write_checkpoint(shard, chunk, _fetch(session, chunk))
        _merge(shards, prefix)
        return prefix


# The most bytes of variable values the client holds at once while saving.
CHUNK_BYTES = 256 << 20


def _nbytes(part: Any) -> int:
    shape = part.shape
    if not shape.is_fully_defined():
        return CHUNK_BYTES  # unknown until fetched: a chunk of its own
    return int(shape.num_elements() or 0) * max(part.dtype.base_dtype.size, 1)


def _chunks(items: Sequence[T], sizes: Sequence[int], budget: int) -> list[list[T]]:
    """``items`` cut into runs of at most ``budget`` bytes (a bigger item alone)."""
    chunks: list[list[T]] = [[]]
    total = 0
    for item, size in zip(items, sizes, strict=True):
        if chunks[-1] and total + size > budget:
            chunks.append([])
            total = 0
        chunks[-1].append(item)
        total += size
    return chunks


def _fetch(session: Any, keyed: Sequence[tuple[str, str, Any]]) -> list[Any]:
    try:
        return list(_run_timeout(session, [part for _, _, part in keyed]))
    except tf.errors.OpError as exc:
        raise BundleError(
            f"cannot read the variables' values through the session: {_gist(exc)}"
        ) from None


def _merge(shards: Sequence[str], prefix: str) -> None:
    graph = tf.Graph()
    with graph.as_default(), tf.device("/device:CPU:0"):
        merge = tf.raw_ops.MergeV2Checkpoints(
            checkpoint_prefixes=tf.constant(list(shards), tf.string),
            destination_prefix=tf.constant(prefix, tf.string),
            delete_old_dirs=True,
        )
    with tf1.Session(graph=graph, config=tf1.ConfigProto(device_count={"GPU": 0})) as local:
        try:
            local.run(merge)
        except tf.errors.OpError as exc:
            raise BundleError(f"cannot write the checkpoint on the client: {_gist(exc)}") from None


def write_checkpoint(
    prefix: str, keyed: Sequence[tuple[str, str, Any]], values: Sequence[Any]
) -> None:
    """Write ``values`` of ``(key, slice spec, variable)`` to the checkpoint ``prefix`` here."""
    keys = [(key, spec) for key, spec, _ in keyed]
    graph = tf.Graph()
    with graph.as_default(), tf.device("/device:CPU:0"):
        feeds = [tf1.placeholder(part.dtype.base_dtype, name="value") for _, _, part in keyed]
        filename = tf1.placeholder(tf.string, [], name="prefix")
        save = tf.raw_ops.SaveV2(
            prefix=filename,
            tensor_names=tf.constant([k for k, _ in keys], tf.string),
            shape_and_slices=tf.constant([s for _, s in keys], tf.string),
            tensors=feeds,
        )
    feed_dict = dict(zip(feeds, values, strict=True))
    feed_dict[filename] = prefix
    with tf1.Session(graph=graph, config=tf1.ConfigProto(device_count={"GPU": 0})) as local:
        try:
            local.run(save, feed_dict=feed_dict)
        except tf.errors.OpError as exc:
            raise BundleError(f"cannot write the checkpoint on the client: {_gist(exc)}") from None


def _read_on_client(outputs: Sequence[Any], prefix: str) -> list[Any]:
    """The values ``outputs`` (of the load's ``RestoreV2``) would have, read in this process."""
    consts: dict[str, tuple[list[bytes], list[bytes], list[Any]]] = {}
    names, slices, dtypes = [], [], []
    for output in outputs:
        restore = output.op
        if restore.name not in consts:
            consts[restore.name] = (
                _constant(restore.inputs[1]),
                _constant(restore.inputs[2]),
                list(restore.get_attr("dtypes")),
            )
        keys, specs, types = consts[restore.name]
        names.append(keys[output.value_index])
        slices.append(specs[output.value_index])
        dtypes.append(types[output.value_index])
    graph = tf.Graph()
    with graph.as_default(), tf.device("/device:CPU:0"):
        filename = tf1.placeholder(tf.string, [], name="prefix")
        values = tf.raw_ops.RestoreV2(
            prefix=filename,
            tensor_names=tf.constant(names, tf.string),
            shape_and_slices=tf.constant(slices, tf.string),
            dtypes=dtypes,
        )
    with tf1.Session(graph=graph, config=tf1.ConfigProto(device_count={"GPU": 0})) as local:
        return list(_run_timeout(local, values, {filename: prefix}))


def _constant(tensor: Any) -> list[bytes]:
    if tensor.op.type != "Const":
        raise BundleError(f"restore input {tensor.name!r} is not a constant")
    return list(tf.make_ndarray(tensor.op.get_attr("value")).reshape(-1))


def run_restore(session: Any, restore_op: Any, filename: Any, prefix: str) -> None:
    """Run the load's ``restore_op`` fed the checkpoint ``prefix`` (a path in this process).

    On a cluster the ``RestoreV2`` would run on a remote task, which cannot see
    ``prefix``: its outputs are read here instead and fed to the assigns, in
    chunks of at most ``CHUNK_BYTES`` of values.
    """
    graph = session.graph
    variables = graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    if not needs_client(session, variables):
        _run_timeout(session, restore_op, {filename: prefix})
        return
    assigns = list(restore_op.control_inputs)
    unfed = [a.name for a in assigns if len(a.inputs) < 2 or a.inputs[1].op.type != "RestoreV2"]
    if unfed:  # pragma: no cover - the load builds every assign from its RestoreV2
        raise BundleError(f"restore step(s) not fed by the checkpoint: {', '.join(unfed)}")
    by_op = {v.op.name: v for v in variables}
    sizes = []
    for assign in assigns:
        variable = by_op.get(assign.inputs[0].op.name)
        sizes.append(_nbytes(variable) if variable is not None else CHUNK_BYTES)
    for batch in _chunks(assigns, sizes, CHUNK_BYTES):
        outputs = [assign.inputs[1] for assign in batch]
        values = _read_on_client(outputs, prefix)
        _run_timeout(session, batch, dict(zip(outputs, values, strict=True)))
