"""Lookups in one ``tf.Graph``: elements by name and kind, closest names for hints.

Everything the binder asks a graph goes through a ``GraphIndex``, so the
binder itself never touches TensorFlow's API. Candidate lists for suggestions
are built only when a name is missing, and once per kind.
"""

from __future__ import annotations

import collections
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from .nodes import LookupKind

__all__ = ["GraphIndex", "Lookup", "NameMap", "default_graph", "lookup"]


def _tf() -> Any:
    import tensorflow as tf

    return tf


class GraphIndex:
    """Name lookups in one graph; candidate lists for suggestions built on demand."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self._variables: dict[str, Any] | None = None
        self._partitions: dict[str, list[Any]] | None = None
        self._candidates: dict[str, tuple[list[str], dict[str, list[str]]]] = {}

    def op(self, name: str) -> Any:
        try:
            return self.graph.get_operation_by_name(name)
        except (KeyError, ValueError):
            return None

    def tensor(self, name: str) -> tuple[Any, str | None]:
        op_name, _, index = name.rpartition(":")
        op = self.op(op_name)
        if op is None:
            return None, None
        i = int(index)
        if i >= len(op.outputs):
            return None, f"op {op_name!r} has {len(op.outputs)} output(s), so no {name!r}"
        return op.outputs[i], None

    def variables(self) -> dict[str, Any]:
        if self._variables is None:
            tf = _tf()
            found: dict[str, Any] = {}
            pools: list[Iterable[Any]] = [
                self.graph.get_collection(k) for k in self.graph.get_all_collection_keys()
            ]
            pools.append(getattr(self.graph, "variables", ()) or ())  # a FuncGraph's captures
            for pool in pools:
                for item in pool:
                    if isinstance(item, tf.Variable):
                        found.setdefault(item.name, item)
            self._variables = found
        return self._variables

    def partitioned(self, name: str) -> list[Any]:
        """The parts of the partitioned variable ``name``, in slice order (empty if none)."""
        if self._partitions is None:
            found: dict[str, list[Any]] = collections.defaultdict(list)
            for variable in self.variables().values():
                info = getattr(variable, "_save_slice_info", None)
                if info is not None:
                    found[info.full_name].append(variable)
            for parts in found.values():
                parts.sort(key=lambda v: tuple(v._save_slice_info.var_offset))
            self._partitions = dict(found)
        return self._partitions.get(name, [])

    def _pool(self, kind: str) -> tuple[list[str], dict[str, list[str]]]:
        if kind not in self._candidates:
            if kind == LookupKind.VARIABLE:
                names = list(self.variables())
            elif kind == LookupKind.PARTITIONED:
                self.partitioned("")
                names = list(self._partitions or ())
            elif kind == "op":
                names = [op.name for op in self.graph.get_operations()]
            else:
                names = [t.name for op in self.graph.get_operations() for t in op.outputs]
            by_base: dict[str, list[str]] = collections.defaultdict(list)
            for n in names:
                by_base[n.rsplit("/", 1)[-1]].append(n)
            self._candidates[kind] = (names, by_base)
        return self._candidates[kind]

    def closest(self, kind: str, name: str) -> str | None:
        names, by_base = self._pool(kind)
        same_base = by_base.get(name.rsplit("/", 1)[-1])
        if same_base:
            # A forgotten or extra import scope: the same name under another prefix.
            nested = [n for n in same_base if n.endswith("/" + name) or name.endswith("/" + n)]
            if nested:
                return min(nested, key=len)
        pool = same_base or names
        found = difflib.get_close_matches(name, pool, n=1, cutoff=0.5)
        return found[0] if found else None


class NameMap:
    """scope_map prefix rewrites (longest prefix first), then the import scope."""

    def __init__(self, import_scope: str | None, scope_map: Mapping[str, str] | None) -> None:
        if scope_map is not None and not isinstance(scope_map, Mapping):
            raise TypeError("scope_map must be a mapping {old_prefix: new_prefix}")
        self.rules = sorted((scope_map or {}).items(), key=lambda kv: -len(kv[0]))
        self.prefix = import_scope.rstrip("/") + "/" if import_scope else ""

    def __call__(self, name: str) -> str:
        for old, new in self.rules:
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        return self.prefix + name


class Lookup:
    """The outcome of looking up one graph name."""

    __slots__ = ("closest_kind", "element", "graph_name", "message")

    def __init__(
        self, element: Any, graph_name: str, message: str = "", closest_kind: str | None = None
    ) -> None:
        self.element = element
        self.graph_name = graph_name
        #: Why the name is not bound ("" when it is).
        self.message = message
        #: The kind of name to suggest a closest match of; None when none helps.
        self.closest_kind = closest_kind


def lookup(index: GraphIndex, kind: str, spec_name: str, names: NameMap) -> Lookup:
    """Find ``spec_name`` (after ``names`` rewrites it) as an element of ``kind``."""
    graph_name = names(spec_name)
    renamed = "" if graph_name == spec_name else f" (spec name {spec_name!r})"
    if kind == LookupKind.OP:
        op = index.op(graph_name)
        if op is not None:
            return Lookup(op, graph_name)
        return Lookup(None, graph_name, f"no op {graph_name!r} in the graph{renamed}", kind)
    if kind == LookupKind.PARTITIONED:
        parts = index.partitioned(graph_name)
        if parts:
            return Lookup(tuple(parts), graph_name)
        if graph_name + ":0" in index.variables():
            return Lookup(
                None,
                graph_name,
                f"{graph_name!r} is a variable that is not partitioned; bind it as "
                f"'variable {spec_name}:0' instead",
            )
        message = f"no partitioned variable {graph_name!r} in the graph{renamed}"
        return Lookup(None, graph_name, message, kind)
    if kind == LookupKind.VARIABLE:
        variable = index.variables().get(graph_name)
        if variable is not None:
            return Lookup(variable, graph_name)
        if index.tensor(graph_name)[0] is not None:
            return Lookup(
                None,
                graph_name,
                f"{graph_name!r} is in the graph but is not a variable (no variable collection "
                f"holds it); bind it as 'tensor {spec_name}' instead",
            )
        return Lookup(None, graph_name, f"no variable {graph_name!r} in the graph{renamed}", kind)
    tensor, why = index.tensor(graph_name)
    if tensor is not None:
        return Lookup(tensor, graph_name)
    if why is not None:
        return Lookup(None, graph_name, why + renamed, LookupKind.TENSOR)
    message = f"no tensor {graph_name!r} in the graph{renamed}"
    return Lookup(None, graph_name, message, LookupKind.TENSOR)


def default_graph(graph: Any) -> Any:
    """``graph``, or TensorFlow's default graph when it is None."""
    if graph is None:
        return _tf().compat.v1.get_default_graph()
    return graph
