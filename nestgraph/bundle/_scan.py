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

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from nestgraph import registry
from nestgraph.bundle import _closure, _container
from nestgraph.errors import BundleError
from nestgraph.spec import Spec

__all__ = [
    "ScanFinding",
    "ScanReport",
    "format_report",
    "refuse_untrusted",
    "scan",
    "scan_meta_graph",
]

_BYTES_SOURCE = "<bytes>"
_MAX_LISTED = 20  # findings shown in a refusal; the report holds all of them
_MAX_PATHS_SHOWN = 5


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
    graph = _closure.Graph(meta_graph)
    records = list(spec.bindings())
    seeds: list[tuple[str, list[str]]] = []
    for record in records:
        names = [_closure.node_name(record.name)]
        if record.kind == "variable":
            names.extend(graph.variable_ops.get(record.name, ()))
        seeds.append((record.path, [n for n in names if n in graph.nodes]))
    reach = graph.reach([name for _, names in seeds for name in names])
    paths: dict[int, list[str]] = {}
    for path, names in seeds:
        bits = 0
        for name in names:
            bits |= reach[name]
        for index in _closure.bits(bits):
            paths.setdefault(index, []).append(path)
    expected = {record.path: _expected_families(record.leaf) for record in records}
    findings: list[ScanFinding] = []
    unreached: list[ScanFinding] = []
    for index, (function, node, danger) in enumerate(graph.findings):
        reaching = [p for p in paths.get(index, ()) if danger.family not in expected[p]]
        hit = ScanFinding(
            op=node.name
            if danger is not _closure.OVERFLOW
            else f"{node.name} (+{graph.overflow - 1} more)",
            op_type=node.op,
            family=danger.family,
            reason=danger.reason,
            paths=tuple(reaching),
            function=function,
        )
        (findings if hit.paths else unreached).append(hit)
    return ScanReport(findings=tuple(findings), unreached=tuple(unreached), file=file)


def _expected_families(leaf_kind: str) -> frozenset[str]:
    handler = registry.handler_for_kind(leaf_kind) if leaf_kind else None
    return handler.expected_families if handler is not None else frozenset()


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
