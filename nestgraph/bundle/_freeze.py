"""Which bound fields a frozen export must leave out: those that update variables.

``convert_variables_to_constants`` turns every variable into a constant; an op
that assigns to one (an optimizer's apply op, a batch-norm moving-average
update, a plain ``assign``) then has nothing to write to, and the bundle would
not load or not run. A field whose closure holds such an op is written as
skipped in the frozen spec, so the frozen bundle is the inference part.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from nestgraph.nodes import Leaf, Skipped, SpecNode, children, is_branch, rebuild
from nestgraph.paths import PathTuple, format_path
from nestgraph.spec import Spec, leaf_parts

__all__ = ["UPDATE_PREFIXES", "UpdateFinder", "repair_function_reads", "without_updates"]

# Op types that write to a variable: the assign family (ref and resource),
# scatters, optimizer apply ops (dense and sparse) and counters.
UPDATE_PREFIXES = (
    "Assign",
    "Scatter",
    "ResourceScatter",
    "Apply",
    "ResourceApply",
    "SparseApply",
    "ResourceSparseApply",
    "StridedSliceAssign",
    "ResourceStridedSliceAssign",
    "CountUpTo",
    "ResourceCountUpTo",
)


def _is_update(op_type: str) -> bool:
    return op_type.startswith(UPDATE_PREFIXES)


def _called(node: Any) -> Iterator[str]:
    """Names of the functions a NodeDef calls (its op, or ``func`` attributes)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        if value.HasField("list"):
            yield from (f.name for f in value.list.func)


class UpdateFinder:
    """Finds, per graph node, an update op in its closure (inputs and control inputs)."""

    def __init__(self, graph_def: Any) -> None:
        self.nodes = {node.name: node for node in graph_def.node}
        self.library = {f.signature.name: f for f in graph_def.library.function}
        self._function_updates: dict[str, str | None] = {}
        # Nodes whose whole closure was searched and held no update op.
        self._clean: set[str] = set()

    def _in_function(self, name: str) -> str | None:
        """An update op inside function ``name`` or the functions it calls, or None."""
        if name in self._function_updates:
            return self._function_updates[name]
        self._function_updates[name] = None  # a recursive call is searched once
        found = None
        stack = [name]
        seen = {name}
        while stack and found is None:
            function = self.library.get(stack.pop())
            if function is None:
                continue
            for node in function.node_def:
                if _is_update(node.op):
                    found = f"{node.op} {node.name!r} in function {function.signature.name!r}"
                    break
                for callee in (node.op, *_called(node)):
                    if callee in self.library and callee not in seen:
                        seen.add(callee)
                        stack.append(callee)
        self._function_updates[name] = found
        return found

    def _own(self, node: Any) -> str | None:
        if _is_update(node.op):
            return f"{node.op} {node.name!r}"
        for callee in (node.op, *_called(node)):
            if callee in self.library:
                found = self._in_function(callee)
                if found is not None:
                    return found
        return None

    def find(self, name: str) -> str | None:
        """An update op ``name`` (a node or tensor name) depends on, or None."""
        start = name.lstrip("^").split(":", 1)[0]
        if start in self._clean:
            return None
        visited = {start}
        stack = [start]
        while stack:
            node = self.nodes.get(stack.pop())
            if node is None:
                continue
            found = self._own(node)
            if found is not None:
                return found
            for ref in node.input:
                upstream = ref.lstrip("^").split(":", 1)[0]
                if upstream not in visited and upstream not in self._clean:
                    visited.add(upstream)
                    stack.append(upstream)
        self._clean |= visited  # every node seen here has a clean closure
        return None


def without_updates(spec: Spec, graph_def: Any) -> tuple[Spec, dict[str, str]]:
    """``spec`` with every leaf that reaches an update op skipped, and ``{path: op}``."""
    finder = UpdateFinder(graph_def)
    found: dict[str, str] = {}

    def visit(node: SpecNode, path: PathTuple) -> SpecNode:
        if isinstance(node, Leaf):
            for _, _, name in leaf_parts(node):
                update = finder.find(name)
                if update is not None:
                    found[format_path(path)] = update
                    return Skipped(f"frozen: it updates variables ({update})")
            return node
        if not is_branch(node):
            return node
        kids: Iterable[tuple[Any, SpecNode]] = [
            (key, visit(child, (*path, key))) for key, child in children(node)
        ]
        return rebuild(node, list(kids))

    root = visit(spec.root, ())
    if not found:
        return spec, found
    return Spec(root), found


def repair_function_reads(graph_def: Any) -> None:
    """Point references to converted reads at the ``Identity`` that replaced them.

    Inside function bodies (``tf.cond`` branches under control flow v2),
    ``convert_variables_to_constants`` turns a ``ReadVariableOp`` into an
    ``Identity`` but leaves references to its old output argument
    (``ReadVariableOp:value:0``), and the frozen graph fails at run time with
    "Return readvariableop -> ReadVariableOp:value:0 is not found". An
    ``Identity`` has one output argument, ``output``.
    """
    for function in graph_def.library.function:
        identities = {node.name for node in function.node_def if node.op == "Identity"}
        if not identities:
            continue
        for node in function.node_def:
            inputs = [_output_of_identity(ref, identities) for ref in node.input]
            if inputs != list(node.input):
                del node.input[:]
                node.input.extend(inputs)
        for key, ref in list(function.ret.items()):
            function.ret[key] = _output_of_identity(ref, identities)


def _output_of_identity(ref: str, identities: set[str]) -> str:
    """``ref`` (``node:arg:index`` in a function body) with an Identity's arg as ``output``."""
    parts = ref.split(":")
    if len(parts) == 3 and parts[0] in identities and parts[1] != "output":
        return f"{parts[0]}:output:{parts[2]}"
    return ref
