"""The restore a load runs: planned from the MetaGraphDef, built as NodeDefs, checked.

A load never runs the bundle's ``saver_def``. Before the graph is imported,
:func:`plan` reads the variables from the MetaGraphDef's ``variables``
collection, :func:`check_against_index` compares each one's dtype and shape
with the checkpoint index, and :func:`add_restore_ops` appends nestgraph's own
restore to the graph: one ``RestoreV2`` over the variables' checkpoint keys,
fed the checkpoint prefix, and one assign per variable, under a fresh name
scope. Adding them as NodeDefs lets TensorFlow's importer build them with the
rest of the graph (building them through Python ops cost 2 s of a 13 s load
of the 40-tower benchmark model). Then :func:`check_closure` walks what
running them would execute, and :func:`run` runs them with a timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import variable_pb2

from nestgraph.bundle import _runcheck
from nestgraph.bundle._metagraph import node_name
from nestgraph.errors import BundleError

__all__ = [
    "OPERATION_TIMEOUT_MS",
    "RestoreOps",
    "Variable",
    "add_restore_ops",
    "check_against_index",
    "check_closure",
    "initialize_local",
    "keys",
    "plan",
    "run",
]

tf1 = tf.compat.v1

# A restore reads at most the bundle's bytes from a local or in-memory file; five
# minutes is far beyond that, and stops a load that hangs on a file that never ends.
OPERATION_TIMEOUT_MS = 300_000
_SCOPE = "nestgraph_restore"
_GLOBAL_VARIABLES = "variables"
_RESOURCE_OPS = frozenset({"VarHandleOp"})


@dataclass(frozen=True)
class Variable:
    """One variable to restore, as the MetaGraphDef describes it."""

    op_name: str
    key: str  # its checkpoint key
    node: Any  # its NodeDef
    slice_spec: str  # "" or the slice of a partitioned variable
    full_shape: tuple[int, ...] | None  # of the whole variable, when partitioned


@dataclass(frozen=True)
class RestoreOps:
    """Names, in the imported graph, of the restore :func:`add_restore_ops` built."""

    filename_tensor: str
    restore_op: str


def plan(meta_graph: Any) -> list[Variable]:
    """The variables of ``meta_graph``'s ``variables`` collection, in order."""
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    collection = meta_graph.collection_def.get(_GLOBAL_VARIABLES)
    if collection is None:
        return []
    variables = []
    for raw in collection.bytes_list.value:
        definition = variable_pb2.VariableDef.FromString(raw)
        op_name = node_name(definition.variable_name)
        node = nodes.get(op_name)
        if node is None:
            raise BundleError(f"the variables collection names {op_name!r}, which is not a node")
        info = definition.save_slice_info_def
        if definition.HasField("save_slice_info_def"):
            spec = " ".join(
                [
                    " ".join(str(d) for d in info.full_shape),
                    ":".join(
                        f"{start},{length}"
                        for start, length in zip(info.var_offset, info.var_shape, strict=True)
                    ),
                ]
            )
            variables.append(Variable(op_name, info.full_name, node, spec, tuple(info.full_shape)))
        else:
            variables.append(Variable(op_name, op_name, node, "", None))
    return variables


def keys(variables: Iterable[Variable]) -> list[str]:
    """The checkpoint keys the variables are saved under, each once."""
    return list(dict.fromkeys(v.key for v in variables))


def _dtype_of(node: Any) -> Any:
    return tf.dtypes.as_dtype(node.attr["dtype"].type)


def _shape_of(variable: Variable) -> Any:
    if variable.full_shape is not None:
        return tf.TensorShape(variable.full_shape)
    node = variable.node
    return (
        tf.TensorShape(node.attr["shape"].shape) if "shape" in node.attr else tf.TensorShape(None)
    )


def _describe(dtype: Any, shape: Any) -> str:
    dims = tuple(shape.as_list()) if shape.rank is not None else "(unknown shape)"
    return f"{dtype.name} {dims}"


def check_against_index(
    variables: Sequence[Variable], entries: Mapping[str, Any], paths: Mapping[str, str]
) -> None:
    """Raise ``BundleError`` unless the checkpoint holds every variable with its dtype and shape.

    ``entries`` maps checkpoint keys to ``BundleEntryProto``; ``paths`` maps a
    variable's op name to its dotted spec path, named in the message and as
    the error's ``path``.
    """
    missing = sorted({v.key for v in variables if v.key not in entries})
    if missing:
        raise BundleError(f"variable(s) not in the bundle's checkpoint: {', '.join(missing)}")
    problems, first_path, done = [], None, set()
    for variable in variables:
        if variable.key in done:
            continue
        done.add(variable.key)
        entry = entries[variable.key]
        try:
            dtype = _dtype_of(variable.node)
            stored_dtype = tf.dtypes.as_dtype(entry.dtype)
        except TypeError:
            dtype = stored_dtype = None
        shape, stored_shape = _shape_of(variable), tf.TensorShape(entry.shape)
        if dtype is None or stored_dtype != dtype or not stored_shape.is_compatible_with(shape):
            where = paths.get(variable.op_name)
            first_path = first_path or where
            label = f"variable {variable.key!r}"
            label = f"{where}: {label}" if where else label
            graph_side = _describe(dtype, shape) if dtype is not None else "of an unknown dtype"
            stored = (
                _describe(stored_dtype, stored_shape)
                if stored_dtype is not None
                else f"of dtype {entry.dtype}"
            )
            problems.append(f"{label} is {graph_side} in the graph but {stored} in the checkpoint")
    if problems:
        error = BundleError("checkpoint and graph disagree: " + "; ".join(problems))
        error.path = first_path
        raise error


def _scope(graph_def: Any) -> str:
    taken = {node.name.split("/", 1)[0] for node in graph_def.node}
    scope, number = _SCOPE, 0
    while scope in taken:
        number += 1
        scope = f"{_SCOPE}_{number}"
    return scope


def _strings(values: Sequence[str]) -> Any:
    return tf.make_tensor_proto([v.encode("utf-8") for v in values], tf.string, [len(values)])


def add_restore_ops(meta_graph: Any, variables: Sequence[Variable]) -> RestoreOps:
    """Append nestgraph's restore of ``variables`` to ``meta_graph``'s graph."""
    graph_def = meta_graph.graph_def
    scope = _scope(graph_def)
    filename = graph_def.node.add(name=f"{scope}/filename", op="Placeholder")
    filename.attr["dtype"].type = tf.string.as_datatype_enum
    filename.attr["shape"].shape.CopyFrom(tf.TensorShape([]).as_proto())
    for name, values in (
        ("tensor_names", [v.key for v in variables]),
        ("shape_and_slices", [v.slice_spec for v in variables]),
    ):
        const = graph_def.node.add(name=f"{scope}/{name}", op="Const", device="/device:CPU:0")
        const.attr["dtype"].type = tf.string.as_datatype_enum
        const.attr["value"].tensor.CopyFrom(_strings(values))
    restore = graph_def.node.add(name=f"{scope}/RestoreV2", op="RestoreV2", device="/device:CPU:0")
    restore.input.extend([filename.name, f"{scope}/tensor_names", f"{scope}/shape_and_slices"])
    restore.attr["dtypes"].list.type.extend(v.node.attr["dtype"].type for v in variables)
    done = graph_def.node.add(name=f"{scope}/restore_all", op="NoOp")
    for number, variable in enumerate(variables):
        source = variable.node
        value = f"{restore.name}:{number}"
        if source.op in _RESOURCE_OPS:
            assign = graph_def.node.add(name=f"{scope}/assign_{number}", op="AssignVariableOp")
            assign.attr["dtype"].type = source.attr["dtype"].type
        else:
            assign = graph_def.node.add(name=f"{scope}/assign_{number}", op="Assign")
            assign.attr["T"].type = source.attr["dtype"].type
            assign.attr["validate_shape"].b = _shape_of(variable).is_fully_defined()
            assign.attr["use_locking"].b = True
            assign.attr["_class"].list.s.append(f"loc:@{source.name}".encode())
        assign.device = source.device
        assign.input.extend([source.name, value])
        done.input.append(f"^{assign.name}")
    return RestoreOps(filename_tensor=f"{filename.name}:0", restore_op=done.name)


def check_closure(meta_graph: Any, ops: RestoreOps) -> None:
    """Refuse the restore unless everything it would run is an op nestgraph builds."""
    _runcheck.check_graph_def(
        meta_graph.graph_def, [ops.restore_op], _runcheck.RESTORE_OPS, "restoring the checkpoint"
    )


def run(session: Any, fetch: Any, feed_dict: Mapping[Any, Any] | None = None) -> None:
    """``session.run`` with the operation timeout every run of a load has."""
    options = tf1.RunOptions(timeout_in_ms=OPERATION_TIMEOUT_MS)
    session.run(fetch, feed_dict=feed_dict, options=options)


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
    run(session, [v.initializer for v in variables])
