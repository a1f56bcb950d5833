"""``ng.summary``: the model tree with bindings, parameters and bytes per object.

Like Keras' ``model.summary()`` and torchinfo: one row per object (and
container) down to a depth, with its class, the number of graph names bound
below it, and the number of parameters and their bytes, from the shapes and
dtypes of the variables bound below it; then totals, trainable and
non-trainable apart. An object reached through a ref (shared, or a cycle) is
counted once, where it is written, and both places are marked.

A bundle's graph is read from its ``MetaGraphDef`` protobuf (the variables'
``VariableDef`` entries and their nodes' ``shape``/``dtype`` attributes): it is
never imported into a ``tf.Graph`` and no weight is read, so a summary of a
large bundle stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._table import format_table
from .errors import ROOT_LABEL, SpecError
from .nodes import describe, iter_nodes
from .paths import PathTuple, format_path, parse_path
from .spec import Spec

__all__ = ["Summary", "SummaryRow", "VariableInfo", "summary"]

_BRANCHES = frozenset({"object", "namedtuple", "list", "tuple", "dict"})
_TENSOR_KINDS = frozenset({"tensor", "op", "variable"})
_TRAINABLE = "trainable_variables"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_HEADER = ("path", "class", "bindings", "params", "bytes", "")
_NUMBERS = frozenset({2, 3, 4})


@dataclass(frozen=True)
class VariableInfo:
    """What the summary needs of one variable; ``params`` is None when its shape is not known."""

    name: str
    dtype: str
    params: int | None
    nbytes: int | None
    trainable: bool


@dataclass(frozen=True)
class Count:
    """Parameters and bytes of a set of variables; ``unknown`` of them had no full shape."""

    params: int = 0
    nbytes: int = 0
    unknown: int = 0

    @classmethod
    def of(cls, variables: Iterable[VariableInfo | None]) -> Count:
        params = nbytes = unknown = 0
        for variable in variables:
            if variable is None or variable.params is None:
                unknown += 1
                continue
            params += variable.params
            if variable.nbytes is None:
                unknown += 1
            else:
                nbytes += variable.nbytes
        return cls(params, nbytes, unknown)

    def params_text(self) -> str:
        return f"{self.params:,}" + ("+?" if self.unknown else "")

    def bytes_text(self) -> str:
        return format_bytes(self.nbytes) + ("+?" if self.unknown else "")


@dataclass(frozen=True)
class SummaryRow:
    """One object or container: its path, class, bindings below it, and their parameters."""

    path: str
    what: str
    bindings: int
    count: Count | None
    note: str = ""


@dataclass(frozen=True)
class Summary:
    """The result of ``ng.summary``; ``str()`` is the table."""

    rows: tuple[SummaryRow, ...]
    bindings: int
    total: Count | None
    trainable: Count | None
    non_trainable: Count | None
    graph_total: Count | None
    graph_variables: int

    def __str__(self) -> str:
        table = [list(_HEADER)]
        for row in self.rows:
            numbers = (
                ("-", "-")
                if row.count is None
                else (row.count.params_text(), row.count.bytes_text())
            )
            table.append([row.path, row.what, f"{row.bindings:,}", *numbers, row.note])
        lines = format_table(table, right=_NUMBERS)
        rule = "-" * max(len(line) for line in lines)
        lines[1:1] = [rule]
        lines.append(rule)
        lines.append(f"bindings: {self.bindings:,}")
        if self.total is None or self.trainable is None or self.non_trainable is None:
            lines.append("params: unknown without a graph (pass a bundle, or the graph)")
            return "\n".join(lines)
        lines.append(f"params: {self.total.params_text()} ({self.total.bytes_text()})")
        lines.append(
            f"  trainable: {self.trainable.params_text()} ({self.trainable.bytes_text()}), "
            f"non-trainable: {self.non_trainable.params_text()} "
            f"({self.non_trainable.bytes_text()})"
        )
        if self.total.unknown:
            lines.append(
                f"  +?: {self.total.unknown} variable(s) not counted in full: unknown shape or "
                "element size, or not in the graph"
            )
        if self.graph_total is not None:
            lines.append(
                f"graph: {self.graph_variables:,} variables, {self.graph_total.params_text()} "
                f"params ({self.graph_total.bytes_text()}), optimizer slots and counters included"
            )
        return "\n".join(lines)


def format_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    >>> format_bytes(512), format_bytes(1536), format_bytes(3 * 1024**3)
    ('512 B', '1.5 KiB', '3.0 GiB')
    """
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- variables


def _info(name: str, dtype: Any, dims: list[int] | None, trainable: bool) -> VariableInfo:
    base = dtype.base_dtype
    params = None
    if dims is not None and all(d >= 0 for d in dims):
        params = 1
        for d in dims:
            params *= d
    # Strings, resources and variants have no fixed element size.
    nbytes = None if params is None or base.size == 0 else params * base.size
    return VariableInfo(name, base.name, params, nbytes, trainable)


def variables_of_meta_graph(meta_graph: Any) -> dict[str, VariableInfo]:
    """``{variable name: info}`` from a MetaGraphDef proto, without importing it."""
    from tensorflow.core.framework import variable_pb2
    from tensorflow.python.framework import dtypes

    from .bundle._metagraph import collection_proto_type, node_name

    variable_def_type = variable_pb2.VariableDef
    parse: Any = variable_def_type.FromString
    defs: dict[str, Any] = {}
    trainable: set[str] = set()
    for key, collection in meta_graph.collection_def.items():
        if collection_proto_type(key) is not variable_def_type:
            continue
        for data in collection.bytes_list.value:
            variable_def = parse(data)
            defs.setdefault(variable_def.variable_name, variable_def)
            if key == _TRAINABLE:
                trainable.add(variable_def.variable_name)
    wanted = {node_name(name): name for name in defs}
    out: dict[str, VariableInfo] = {}
    for node in meta_graph.graph_def.node:
        name = wanted.get(node.name)
        if name is None or "dtype" not in node.attr:
            continue
        shape = node.attr["shape"].shape if "shape" in node.attr else None
        dims = None if shape is None or shape.unknown_rank else [d.size for d in shape.dim]
        out[name] = _info(name, dtypes.as_dtype(node.attr["dtype"].type), dims, name in trainable)
    return out


def variables_of_graph(graph: Any) -> dict[str, VariableInfo]:
    """``{variable name: info}`` of every variable in a ``tf.Graph``'s collections."""
    import tensorflow as tf

    trainable = {v.name for v in graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)}
    out: dict[str, VariableInfo] = {}
    for key in graph.get_all_collection_keys():
        for item in graph.get_collection(key):
            if isinstance(item, tf.Variable) and item.name not in out:
                shape = item.shape
                dims = None if shape.rank is None else [-1 if d is None else d for d in shape]
                out[item.name] = _info(item.name, item.dtype, dims, item.name in trainable)
    return out


def _variables(graph: Any) -> dict[str, VariableInfo] | None:
    if graph is None:
        return None
    if hasattr(graph, "graph_def") and hasattr(graph, "collection_def"):
        return variables_of_meta_graph(graph)
    if hasattr(graph, "get_all_collection_keys"):
        return variables_of_graph(graph)
    raise TypeError(f"graph must be a tf.Graph or a MetaGraphDef, not {type(graph).__name__}")


# --------------------------------------------------------------------------- the tree


def _path_text(path: PathTuple) -> str:
    return format_path(path) if path else ROOT_LABEL


def _rows(
    spec: Spec, prefix: PathTuple, depth: int | None, variables: Mapping[str, VariableInfo] | None
) -> tuple[list[SummaryRow], int, set[str]]:
    """The rows, the number of bindings and the names of the variables bound, under the root."""
    branches: list[tuple[int, PathTuple, str]] = []
    refs: list[tuple[int, PathTuple, str]] = []
    bindings: dict[PathTuple, int] = {}
    bound: dict[PathTuple, set[str]] = {}
    total_bindings = 0
    all_variables: set[str] = set()
    for index, (path, node) in enumerate(iter_nodes(spec.root)):
        kind, detail = describe(node)
        if kind in _BRANCHES:
            branches.append((index, path, detail if kind in ("object", "namedtuple") else kind))
            continue
        if kind == "ref":
            refs.append((index, path, detail))
            continue
        names = [detail] if kind in _TENSOR_KINDS else detail.split(" ") if kind == "sparse" else []
        total_bindings += len(names)
        for cut in range(len(path) if names else 0):
            owner = path[:cut]
            bindings[owner] = bindings.get(owner, 0) + len(names)
            if kind == "variable":
                bound.setdefault(owner, set()).add(detail)
        if kind == "variable":
            all_variables.add(detail)

    def full(local: PathTuple) -> str:
        return _path_text((*prefix, *local))

    # A ref's detail is its target's dotted path, as the target's own path is written.
    sharers: dict[str, list[str]] = {}
    for _, path, target in refs:
        sharers.setdefault(target, []).append(full(path))
    rows: list[tuple[int, SummaryRow]] = []
    for index, path, what in branches:
        if depth is None or len(path) <= depth:
            count = None
            if variables is not None:
                count = Count.of(variables.get(name) for name in sorted(bound.get(path, ())))
            shared = sharers.get(_path_text(path), [])
            note = f"shared: also at {', '.join(shared)}" if shared else ""
            rows.append((index, SummaryRow(full(path), what, bindings.get(path, 0), count, note)))
    for index, path, target in refs:
        if depth is None or len(path) <= depth:
            target_path = () if target == ROOT_LABEL else parse_path(target)
            note = f"= {full(target_path)}, counted there"
            rows.append((index, SummaryRow(full(path), "ref", 0, None, note)))
    rows.sort(key=lambda item: item[0])
    return [row for _, row in rows], total_bindings, all_variables


def summary(
    source: Spec | str | os.PathLike[str] | bytes,
    graph: Any = None,
    subtree: str | None = None,
    depth: int | None = None,
) -> Summary:
    """The model tree with bindings, parameters and bytes per object; ``str()`` is the table.

    Args:
      source: a bundle (a path or its bytes), a spec file's path, or a ``Spec``.
      graph: where the variables' shapes and dtypes come from: a ``tf.Graph`` or a
        ``MetaGraphDef``. For a bundle, its own graph by default; for a spec without
        one, only bindings are counted.
      subtree: summarise only this part (a dotted path); rows keep their full paths.
      depth: rows down to this many levels below the top (0: the top alone).

    >>> fields = {"x": "tensor x:0", "enc": {"dict": {"w": "variable enc/w:0"}}}
    >>> spec = Spec.from_dict({"nestgraph": 1, "class": "pkg:Model", "fields": fields})
    >>> [(row.path, row.what, row.bindings) for row in summary(spec).rows]
    [('<root>', 'pkg:Model', 2), ('enc', 'dict', 1)]
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise SpecError(f"depth must be a whole number >= 0, not {depth!r}")
    spec, graph = _source(source, graph)
    prefix: PathTuple = ()
    if subtree is not None:
        prefix, _ = spec.resolve(subtree)
        spec = spec.subtree(subtree)
    variables = _variables(graph)
    rows, bindings, bound = _rows(spec, prefix, depth, variables)
    if variables is None:
        return Summary(tuple(rows), bindings, None, None, None, None, 0)
    infos = [variables.get(name) for name in sorted(bound)]
    return Summary(
        tuple(rows),
        bindings,
        Count.of(infos),
        Count.of(i for i in infos if i is not None and i.trainable),
        Count.of(i for i in infos if i is None or not i.trainable),
        Count.of(variables.values()),
        len(variables),
    )


def _source(source: Any, graph: Any) -> tuple[Spec, Any]:
    if isinstance(source, Spec):
        return source, graph
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise TypeError(
            f"summary takes a bundle (path or bytes), a spec file or a Spec, not "
            f"{type(source).__name__}"
        )
    from .bundle import _inspect

    if _inspect.is_bundle(source):
        spec = _inspect.read_spec(source)
        return spec, graph if graph is not None else _inspect.read_meta_graph(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Spec.from_yaml(bytes(source), source="<bytes>"), graph
    from .specio import load_spec

    return load_spec(source), graph
