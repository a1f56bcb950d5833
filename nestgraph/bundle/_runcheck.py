"""Before a load runs anything: the closure of what would run, checked op by op.

A bundle's graph is data from outside: any node in it may be wired (through a
data or ``^control`` input, or inside a function body) to an op that reads or
writes files, talks to the network or runs Python. A load therefore never runs
an op the bundle chose (its ``saver_def``, its initializers as they stand) but
only ops nestgraph builds, and before each ``session.run`` it walks everything
that run would execute and refuses any op type outside a short allowlist.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from nestgraph.errors import BundleError

__all__ = [
    "INITIALIZER_OPS",
    "READ_OPS",
    "RESTORE_OPS",
    "SAVE_OPS",
    "VARIABLE_OPS",
    "check_graph_def",
    "check_runnable",
]

VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
# Reading a variable's value, as a fetch of a tf.Variable does.
READ_OPS = VARIABLE_OPS | {"Identity", "ReadVariableOp"}
# What nestgraph's own restore builds: RestoreV2 fed a file name, one assign per variable.
RESTORE_OPS = VARIABLE_OPS | {
    "Placeholder",
    "Const",
    "RestoreV2",
    "Assign",
    "AssignVariableOp",
    "NoOp",
}
# What a sharded tf.compat.v1.train.Saver builds to save (nestgraph's own, never a bundle's).
SAVE_OPS = READ_OPS | {
    "Const",
    "MergeV2Checkpoints",
    "NoOp",
    "Pack",
    "Placeholder",
    "PlaceholderWithDefault",
    "SaveV2",
    "Select",
    "SelectV2",
    "ShardedFilename",
    "StaticRegexFullMatch",
    "StringJoin",
}
# Initial values a local variable may start from: constants, shapes of constants,
# other variables' values. Documented in the README's security model.
INITIALIZER_OPS = READ_OPS | {
    "Assign",
    "AssignVariableOp",
    "Const",
    "Fill",
    "ZerosLike",
    "OnesLike",
    "Cast",
    "Reshape",
    "Pack",
    "Shape",
    "ExpandDims",
    "Squeeze",
    "BroadcastTo",
    "Tile",
    "NoOp",
}
_ONLY_OURS = "in a graph from a bundle nestgraph runs only ops it builds"
# Calls are allowed only when every op of the functions they call is.
_CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


def _called(attrs: Any) -> Iterator[str]:
    """The functions an op's attributes name (``f``, ``then_branch``, lists of them)."""
    for value in attrs.values():
        if value.HasField("func"):
            yield value.func.name
        elif value.HasField("list"):
            for func in value.list.func:
                yield func.name


def _check_function(
    name: str, library: dict[str, Any], allowed: frozenset[str], what: str, seen: set[str]
) -> None:
    if name in seen:
        return
    seen.add(name)
    function = library.get(name)
    if function is None:
        raise BundleError(f"{what}: would call function {name!r}, which the graph does not define")
    for node in function.node_def:
        if node.op in library:
            _check_function(node.op, library, allowed, what, seen)
        elif node.op not in allowed and node.op not in _CALL_OPS:
            raise BundleError(
                f"{what}: would run op {node.name!r} of type {node.op} inside function "
                f"{name!r}; {_ONLY_OURS} ({_allowed_list(allowed)})"
            )
        for called in _called(node.attr):
            _check_function(called, library, allowed, what, seen)


def _graph_element(fetch: Any) -> Any:
    element = getattr(fetch, "_graph_element", None)
    return fetch if element is None else element


def _allowed_list(allowed: frozenset[str]) -> str:
    return ", ".join(sorted(allowed))


def check_runnable(
    fetches: Iterable[Any],
    allowed: frozenset[str],
    what: str,
    feeds: Iterable[Any] = (),
) -> None:
    """Raise ``BundleError`` unless running ``fetches`` executes only ``allowed`` op types.

    Args:
      fetches: the operations or tensors a ``session.run`` would be given.
      allowed: op types that may run.
      what: names the thing being run in the message (``"local variable 'v'"``).
      feeds: tensors that will be fed, which cut the walk as they cut the run.
    """
    fed = {id(tensor) for tensor in feeds}
    fed_names = {tensor.name for tensor in feeds}
    # A tf.Variable is fetched as its graph element (its value, or its read op).
    elements = [_graph_element(fetch) for fetch in fetches]
    stack = [getattr(element, "op", element) for element in elements]
    seen: set[str] = set()
    library: dict[str, Any] | None = None
    functions_seen: set[str] = set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        graph = op.graph
        calls = list(_called(op.node_def.attr))
        is_function = graph._is_function(op.type)
        if is_function:
            calls.append(op.type)
        elif op.type not in allowed and not (calls and op.type in _CALL_OPS):
            raise BundleError(
                f"{what}: would run op {op.name!r} of type {op.type}; {_ONLY_OURS} "
                f"({_allowed_list(allowed)})"
            )
        if calls:
            if library is None:
                library = {f.signature.name: f for f in graph.as_graph_def().library.function}
            for name in calls:
                _check_function(name, library, allowed, what, functions_seen)
        for tensor in op.inputs:
            if id(tensor) not in fed and tensor.name not in fed_names:
                stack.append(tensor.op)
        stack.extend(op.control_inputs)


def check_graph_def(
    graph_def: Any, fetches: Iterable[str], allowed: frozenset[str], what: str
) -> None:
    """:func:`check_runnable` on a ``GraphDef`` before it is imported.

    ``fetches`` are node names. Walking protocol buffers by name is several
    times faster than walking ``tf.Operation`` objects, which is what lets a
    full load check every variable's restore.
    """
    nodes = {node.name: node for node in graph_def.node}
    library = {f.signature.name: f for f in graph_def.library.function}
    functions_seen: set[str] = set()
    stack = [_node_name(name) for name in fetches]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = nodes.get(name)
        if node is None:
            raise BundleError(f"{what}: would run {name!r}, which is not in the graph")
        calls = list(_called(node.attr))
        if node.op in library:
            calls.append(node.op)
        elif node.op not in allowed and not (calls and node.op in _CALL_OPS):
            raise BundleError(
                f"{what}: would run op {node.name!r} of type {node.op}; {_ONLY_OURS} "
                f"({_allowed_list(allowed)})"
            )
        for called in calls:
            _check_function(called, library, allowed, what, functions_seen)
        stack.extend(_node_name(ref) for ref in node.input)


def _node_name(ref: str) -> str:
    ref = ref[1:] if ref.startswith("^") else ref
    head, sep, tail = ref.rpartition(":")
    return head if sep and tail.isdigit() else ref
