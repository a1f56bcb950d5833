"""``ng.scan``: which ops a bundle's bound fields can run that act outside the session.

The scan reads the ``MetaGraphDef`` proto and the spec; nothing of the bundle is
imported into a ``tf.Graph`` or run. The closure of a bound field is every node
its graph name depends on through data and ``^control`` inputs, plus, for a
variable, its initializer (a user may run it). A node that calls a function
(its op is a library function, or any attribute holds a function, as ``If``,
``While``, ``PartitionedCall`` or ``MapDataset`` do) brings in the whole body of
that function, every function that body calls, and their registered gradients:
a body is judged whole, not by its own closure, because any of it may run.

An op type that is neither registered in this TensorFlow nor a function of the
bundle's library is a finding: what it would do cannot be known. Ops reached
from no bound field (an honest model's own ``save/SaveV2``) are reported as
``unreached``; they do not make a bundle fail, since nestgraph never runs them.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from nestgraph.bundle import _container, _optable
from nestgraph.errors import BundleError, NestgraphError
from nestgraph.spec import Spec

__all__ = [
    "ScanFinding",
    "ScanReport",
    "exit_status",
    "format_report",
    "refuse_untrusted",
    "run_command",
    "scan",
    "scan_meta_graph",
]

_BYTES_SOURCE = "<bytes>"
_MAX_LISTED = 20  # findings shown in a refusal; the report holds all of them
_MAX_PATHS_SHOWN = 5
_UNKNOWN = _optable.Danger(
    "unknown", "an op type this TensorFlow does not know: what it does cannot be checked"
)
_MISSING_FUNCTION = _optable.Danger(
    "unknown", "calls a function that is not in the bundle's function library"
)

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


@dataclass(frozen=True)
class ScanFinding:
    """One listed op: where it is, what it is, and the bound fields that reach it.

    ``function`` is the library function whose body holds the op (None for an
    op of the graph itself); ``paths`` are dotted spec paths, in spec order.
    """

    op: str
    op_type: str
    family: str
    reason: str
    paths: tuple[str, ...]
    function: str | None = None

    @property
    def where(self) -> str:
        return self.op if self.function is None else f"{self.op} (in function {self.function})"


@dataclass(frozen=True)
class ScanReport:
    """What ``ng.scan`` found. ``ok`` when no bound field reaches a listed op."""

    findings: tuple[ScanFinding, ...]
    unreached: tuple[ScanFinding, ...] = ()
    file: str = _BYTES_SOURCE

    @property
    def ok(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        return format_report(self)


# --------------------------------------------------------------------------- entry points


Source = str | os.PathLike[str] | bytes | IO[bytes]


def scan(source: Source, subtree: str | None = None) -> ScanReport:
    """Scan a bundle (a path, its bytes, or a binary file) without loading it.

    With ``subtree``, only the bound fields of that sub-network count.

    >>> report = ng.scan("model.ng")  # doctest: +SKIP
    >>> report.ok, [f.op_type for f in report.findings]  # doctest: +SKIP
    (False, ['WriteFile'])

    Raises:
      BundleError: the bundle is missing, not a regular file, truncated or corrupt.
      SpecError: its spec is malformed or ``subtree`` is not in it.
    """
    file, contents = _read(source)
    spec = Spec.from_yaml(contents.spec, source=f"{file}:spec.yaml")
    meta_graph = parse_meta_graph(contents.graph, file)
    if subtree is not None:
        spec = spec.subtree(subtree)
    return scan_meta_graph(meta_graph, spec, file=file)


def refuse_untrusted(meta_graph: Any, spec: Spec, subtree: str | None, file: str) -> None:
    """Raise ``BundleError`` if a bound field (of ``subtree``) reaches a listed op."""
    report = scan_meta_graph(
        meta_graph, spec.subtree(subtree) if subtree is not None else spec, file=file
    )
    if report.ok:
        return
    lines = [
        f"refused: bound fields reach {len(report.findings)} op(s) that can act outside "
        "the session; load it with trusted=True only if you trust who made it "
        "(ng.scan lists them all):"
    ]
    lines.extend(f"  {_one_line(finding)}" for finding in report.findings[:_MAX_LISTED])
    if len(report.findings) > _MAX_LISTED:
        lines.append(f"  ... and {len(report.findings) - _MAX_LISTED} more")
    raise BundleError("\n".join(lines), file=file)


def format_report(report: ScanReport) -> str:
    """The text ``nestgraph scan BUNDLE`` prints: a verdict, then a table per kind of finding."""
    if report.ok:
        head = f"{report.file}: clean: no bound field reaches an op that acts outside the session"
    else:
        head = (
            f"{report.file}: {len(report.findings)} op(s) that can act outside the session "
            "are reached from bound fields; ng.load refuses it unless trusted=True"
        )
    lines = [head]
    if report.findings:
        lines.append("")
        lines.extend(_table(report.findings, with_paths=True))
    if report.unreached:
        lines.append("")
        lines.append(f"listed ops that no bound field reaches ({len(report.unreached)}; not run):")
        lines.extend(_table(report.unreached, with_paths=False))
    return "\n".join(lines)


def exit_status(report: ScanReport) -> int:
    """The ``nestgraph scan`` exit status: 0 clean, 1 findings (2 is for bad input)."""
    return EXIT_CLEAN if report.ok else EXIT_FINDINGS


def run_command(bundle: str, subtree: str | None = None) -> tuple[int, str]:
    """``nestgraph scan BUNDLE``: ``(exit status, text to print)``; 2 when the input is bad."""
    try:
        report = scan(bundle, subtree=subtree)
    except NestgraphError as exc:
        return EXIT_BAD_INPUT, f"error: {exc}"
    return exit_status(report), format_report(report)


# --------------------------------------------------------------------------- reading


def _read(source: Source) -> tuple[str, Any]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _BYTES_SOURCE, _container.unpack(
            io.BytesIO(bytes(source)), _BYTES_SOURCE, checkpoint=False
        )
    if isinstance(source, (str, os.PathLike)):
        file = os.fspath(source)
        if "://" in file:
            return file, _container.unpack(io.BytesIO(_read_remote(file)), file, checkpoint=False)
        return file, _container.unpack_file(file, checkpoint=False)
    file = str(getattr(source, "name", "<stream>"))
    return file, _container.unpack(source, file, checkpoint=False)


def _read_remote(file: str) -> bytes:
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(file, "rb") as remote:
            data: bytes = remote.read()
    except tf.errors.NotFoundError:
        raise BundleError("no such bundle", file=file) from None
    except tf.errors.OpError as exc:
        raise BundleError(f"cannot read: {exc.message}", file=file) from None
    return data


def parse_meta_graph(data: bytes, file: str) -> Any:
    """The ``MetaGraphDef`` in ``data``; ``BundleError`` for anything else."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, RecursionError) as exc:
        raise BundleError(f"graph.pb is not a MetaGraphDef: {exc}", file=file) from None
    return meta_graph


# --------------------------------------------------------------------------- the scan


def scan_meta_graph(meta_graph: Any, spec: Spec, file: str = _BYTES_SOURCE) -> ScanReport:
    """Scan a parsed ``MetaGraphDef`` against the bound fields of ``spec``."""
    graph = _Graph(meta_graph)
    records = list(spec.bindings())
    seeds: list[tuple[str, list[str]]] = []
    for record in records:
        names = [_node_name(record.name)]
        if record.kind == "variable":
            names.extend(graph.variable_ops.get(record.name, ()))
        seeds.append((record.path, [n for n in names if n in graph.nodes]))
    reach = graph.reach([name for _, names in seeds for name in names])
    paths: dict[int, list[str]] = {}
    for path, names in seeds:
        bits = 0
        for name in names:
            bits |= reach[name]
        for index in _bits(bits):
            paths.setdefault(index, []).append(path)
    findings: list[ScanFinding] = []
    unreached: list[ScanFinding] = []
    for index, (function, node, danger) in enumerate(graph.findings):
        hit = ScanFinding(
            op=node.name,
            op_type=node.op,
            family=danger.family,
            reason=danger.reason,
            paths=tuple(paths.get(index, ())),
            function=function,
        )
        (findings if hit.paths else unreached).append(hit)
    return ScanReport(findings=tuple(findings), unreached=tuple(unreached), file=file)


class _Graph:
    """The nodes, function library and listed ops of one ``MetaGraphDef``."""

    def __init__(self, meta_graph: Any) -> None:
        graph_def = meta_graph.graph_def
        self.nodes: dict[str, Any] = {node.name: node for node in graph_def.node}
        self.library = {f.signature.name: f for f in graph_def.library.function}
        self.gradients = {g.function_name: g.gradient_func for g in graph_def.library.gradient}
        self.variable_ops = _variable_ops(meta_graph)
        # (function or None, NodeDef, Danger), one per listed op; the bit of a
        # finding in every reach mask is its index here.
        self.findings: list[tuple[str | None, Any, _optable.Danger]] = []
        self._function_bits = self._judge_functions()
        self._own: dict[str, int] = {}
        for node in graph_def.node:
            self._own[node.name] = self._judge(None, node, self._graph_lookup, self._function_bits)

    def _graph_lookup(self, ref: str) -> Any:
        return self.nodes.get(_node_name(ref))

    def _judge(
        self, function: str | None, node: Any, lookup: _optable.Lookup, function_bits: Any
    ) -> int:
        """The reach bits of ``node`` itself: its own listing and the functions it calls."""
        bits = 0
        danger = _optable.classify(node, lookup)
        if danger is None and node.op not in self.library and not _registered(node.op):
            danger = _UNKNOWN
        if danger is not None:
            bits |= self._add(function, node, danger)
        for called in _called_functions(node, self.library):
            if called in self.library:
                bits |= function_bits(called)
            elif not _registered(called):
                bits |= self._add(function, node, _MISSING_FUNCTION)
        return bits

    def _add(self, function: str | None, node: Any, danger: _optable.Danger) -> int:
        self.findings.append((function, node, danger))
        return 1 << (len(self.findings) - 1)

    def _judge_functions(self) -> Any:
        """Judge every body once; return ``name -> bits of everything a call to it reaches``."""
        body_bits: dict[str, int] = {}
        calls: dict[str, set[str]] = {}
        for name, function in self.library.items():
            local = {node.name: node for node in function.node_def}
            calls[name] = set()

            def lookup(ref: str, local: dict[str, Any] = local) -> Any:
                return local.get(_node_name(ref.split(":", 1)[0]))

            def note_call(called: str, callers: set[str] = calls[name]) -> int:
                callers.add(called)
                return 0

            bits = 0
            for node in function.node_def:
                bits |= self._judge(name, node, lookup, note_call)
            body_bits[name] = bits
            if name in self.gradients:
                calls[name].add(self.gradients[name])
        memo: dict[str, int] = {}

        def function_bits(start: str) -> int:
            if start not in memo:
                seen, todo, bits = {start}, [start], 0
                while todo:
                    current = todo.pop()
                    bits |= body_bits.get(current, 0)
                    for nxt in calls.get(current, ()):
                        if nxt not in seen and nxt in self.library:
                            seen.add(nxt)
                            todo.append(nxt)
                memo[start] = bits
            return memo[start]

        return function_bits

    def reach(self, seeds: Sequence[str]) -> dict[str, int]:
        """``node -> bits of every finding in its closure`` for the nodes reachable from ``seeds``.

        Iterative Tarjan: a hostile graph may be deep or hold cycles (a v1 while
        loop is one), and each strongly connected component shares one mask.
        """
        edges = {name: _input_nodes(node, self.nodes) for name, node in self.nodes.items()}
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        reach: dict[str, int] = {}
        counter = 0
        for seed in seeds:
            if seed in index:
                continue
            work: list[tuple[str, Iterator[str]]] = [(seed, iter(edges[seed]))]
            index[seed] = low[seed] = counter
            counter += 1
            stack.append(seed)
            on_stack.add(seed)
            while work:
                name, children = work[-1]
                advanced = False
                for child in children:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(edges[child])))
                        advanced = True
                        break
                    if child in on_stack:
                        low[name] = min(low[name], index[child])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[name])
                if low[name] == index[name]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == name:
                            break
                    bits = 0
                    for member in component:
                        bits |= self._own[member]
                        for child in edges[member]:
                            bits |= reach.get(child, 0)
                    for member in component:
                        reach[member] = bits
        return reach


def _variable_ops(meta_graph: Any) -> dict[str, list[str]]:
    """``variable name -> ops a user may run on it`` (its initializer), from the collections."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import variable_pb2

    ops: dict[str, list[str]] = {}
    for collection in meta_graph.collection_def.values():
        if not collection.HasField("bytes_list"):
            continue
        for blob in collection.bytes_list.value:
            variable = variable_pb2.VariableDef()
            try:
                variable.ParseFromString(blob)
            except DecodeError:  # a collection of another proto type
                continue
            if variable.variable_name and variable.initializer_name:
                ops.setdefault(variable.variable_name, []).append(
                    _node_name(variable.initializer_name)
                )
    return ops


def _called_functions(node: Any, library: Any) -> Iterator[str]:
    """Every function name ``node`` can call: its op type, or any func-valued attribute."""
    if node.op in library:
        yield node.op
    todo = list(node.attr.values())
    while todo:
        value = todo.pop()
        kind = value.WhichOneof("value")
        if kind == "func":
            yield value.func.name
            todo.extend(value.func.attr.values())
        elif kind == "list":
            for func in value.list.func:
                yield func.name
                todo.extend(func.attr.values())


def _input_nodes(node: Any, nodes: dict[str, Any]) -> list[str]:
    found = []
    for ref in node.input:
        name = _node_name(ref)
        if name in nodes:
            found.append(name)
    return found


def _node_name(ref: str) -> str:
    if ref.startswith("^"):
        ref = ref[1:]
    head, sep, tail = ref.rpartition(":")
    return head if sep and tail.isdigit() else ref


@functools.lru_cache(maxsize=4096)  # bounded: hostile graphs bring any names
def _registered(op_type: str) -> bool:
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_type) is not None


def _bits(mask: int) -> Iterable[int]:
    index = 0
    while mask:
        if mask & 1:
            yield index
        mask >>= 1
        index += 1


# --------------------------------------------------------------------------- text


def _paths_text(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_MAX_PATHS_SHOWN])
    more = len(paths) - _MAX_PATHS_SHOWN
    return f"{shown} (+{more} more)" if more > 0 else shown


def _one_line(finding: ScanFinding) -> str:
    return (
        f"{finding.op_type} {finding.where!r} [{finding.family}: {finding.reason}] "
        f"reached from {_paths_text(finding.paths)}"
    )


def _table(findings: Sequence[ScanFinding], *, with_paths: bool) -> list[str]:
    header = ["op type", "op", "family", "reached from" if with_paths else "why listed"]
    rows = [
        [
            f.op_type,
            f.where,
            f.family,
            _paths_text(f.paths) if with_paths else f.reason,
        ]
        for f in findings
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[3]]).rstrip())
    if with_paths:
        families = sorted({f.family for f in findings})
        lines.append("")
        lines.extend(f"  {family}: {_family_reason(findings, family)}" for family in families)
    return lines


def _family_reason(findings: Sequence[ScanFinding], family: str) -> str:
    return next(f.reason for f in findings if f.family == family)
