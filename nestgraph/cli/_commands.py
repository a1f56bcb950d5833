"""One short function per command, each over the public API.

Commands that only read specs (``show``, ``flatten``, ``diff``, ``rescope``,
``convert``, ``summary`` of a spec alone, and ``flatten`` on a bundle) never
import TensorFlow, so they answer at once; the others import it quietly (see
``terminal.quiet_tensorflow``). Each returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import nestgraph as ng
from nestgraph import bundle
from nestgraph.errors import ROOT_LABEL
from nestgraph.nodes import SpecNode, describe, iter_nodes
from nestgraph.paths import PathTuple, format_path
from nestgraph.spec import Spec

from ._inputs import (
    InputError,
    about,
    open_local,
    read_input,
    read_json,
    require_bundle,
    write_spec,
)
from .terminal import print_table, quiet_tensorflow, tensorflow_work

__all__ = ["COMMANDS", "EXIT_DIFFERENT", "EXIT_OK"]

EXIT_OK = 0
EXIT_DIFFERENT = 1  # check found problems, diff found differences

_NOT_IN_GRAPH = "<not in the graph>"


def _path_text(path: PathTuple) -> str:
    return format_path(path) if path else ROOT_LABEL


def _graph(file: str, debug: bool) -> Any:
    """The graph of the bundle or ``.meta`` file ``file``, imported for inspection."""
    open_local(file).close()  # local files only, with the command line's messages
    quiet_tensorflow(debug)  # before the progress line below, which it would interrupt
    with tensorflow_work("importing the graph", debug):
        return bundle.import_graph(file)


# --------------------------------------------------------------------------- show / flatten


def _graph_types(graph: Any, tf: Any) -> Callable[[SpecNode], str]:
    """A function giving the dtype and shape (or op type) a binding has in ``graph``."""
    variables: dict[str, Any] = {}
    for key in graph.get_all_collection_keys():
        for item in graph.get_collection(key):
            if isinstance(item, tf.Variable):
                variables.setdefault(item.name, item)

    def tensor(name: str) -> Any:
        try:
            return graph.get_tensor_by_name(name)
        except (KeyError, ValueError):
            return None

    def typed(found: Any) -> str:
        return f"{tf.as_dtype(found.dtype).base_dtype.name} {found.shape}"

    def types(node: SpecNode) -> str:
        kind, detail = describe(node)
        if kind == "op":
            try:
                return f"[{graph.get_operation_by_name(detail).type}]"
            except (KeyError, ValueError):
                return _NOT_IN_GRAPH
        if kind in ("tensor", "variable"):
            found = variables.get(detail) if kind == "variable" else None
            found = found if found is not None else tensor(detail)
            return _NOT_IN_GRAPH if found is None else typed(found)
        if kind == "sparse":
            _, values_name, shape_name = detail.split(" ")
            values, dense_shape = tensor(values_name), tensor(shape_name)
            if values is None or dense_shape is None:
                return _NOT_IN_GRAPH
            rank = dense_shape.shape[0] if dense_shape.shape.rank == 1 else None
            return f"{values.dtype.base_dtype.name} sparse, rank {'?' if rank is None else rank}"
        return ""

    return types


def show(args: argparse.Namespace) -> int:
    source = read_input(args.input)
    with about(source.file):
        start, top = source.spec.resolve(args.subtree if args.subtree is not None else ())
    types: Callable[[SpecNode], str] | None = None
    if source.is_bundle and not args.no_types:
        types = _graph_types(_graph(source.file, args.debug), quiet_tensorflow(args.debug))
    rows = []
    for path, node in iter_nodes(top, start):
        row = [_path_text(path), *describe(node)]
        if types is not None:
            row.append(types(node))
        rows.append(row)
    print_table(rows)
    return EXIT_OK


def flatten(args: argparse.Namespace) -> int:
    for record in read_input(args.input).spec.bindings():
        print(f"{record.path}\t{record.kind}\t{record.name}")
    return EXIT_OK


# --------------------------------------------------------------------------- check / diff


def check(args: argparse.Namespace) -> int:
    source = read_input(args.spec)
    graph = _graph(args.graph, args.debug)
    with about(source.file):
        report = ng.check(
            source.spec,
            graph,
            subtree=args.subtree,
            import_scope=args.import_scope,
            scope_map=dict(args.scope_map or ()),
        )
    for finding in report.problems:
        # Compiler-style "file:line:" (lines are known for YAML files), for editors to jump to.
        where = source.file
        if not source.is_bundle and finding.line is not None:
            where += f":{finding.line}"
        print(f"{where}: {finding.path or ROOT_LABEL}: {finding.message}")
    total = len(report.findings)
    if report.ok:
        print(f"ok: all {total} bindings found in {args.graph}")
        return EXIT_OK
    print(f"{len(report.problems)} of {total} bindings have problems in {args.graph}")
    return EXIT_DIFFERENT


def diff(args: argparse.Namespace) -> int:
    difference = read_input(args.a).spec.diff(read_input(args.b).spec)
    if not difference:
        print(f"no differences between {args.a} and {args.b}")
        return EXIT_OK
    print(difference)
    print(f"{args.a} and {args.b} differ: {difference.counts()}")
    return EXIT_DIFFERENT


# --------------------------------------------------------------------------- writing specs


def rescope(args: argparse.Namespace) -> int:
    source = read_input(args.spec)
    out = args.output or args.spec
    if source.is_bundle and args.output is None:
        raise InputError(
            "is a bundle; rescope does not rewrite bundles in place, "
            "pass -o OUT.yaml to write the rescoped spec",
            file=args.spec,
        )
    with about(source.file):
        rescoped = source.spec.rescope(args.old_prefix, args.new_prefix, subtree=args.subtree)
    before = source.spec.bindings()
    changed = sum(a.name != b.name for a, b in zip(before, rescoped.bindings(), strict=True))
    write_spec(rescoped, out)
    print(
        f"{out}: {changed} name{'' if changed == 1 else 's'} rescoped "
        f"{args.old_prefix!r} -> {args.new_prefix!r}",
        file=sys.stderr,
    )
    return EXIT_OK


def convert(args: argparse.Namespace) -> int:
    write_spec(read_input(args.spec).spec, args.output)
    kind = "JSON" if args.output.lower().endswith(".json") else "YAML"
    print(f"{args.output}: wrote the spec as {kind}", file=sys.stderr)
    return EXIT_OK


def upgrade(args: argparse.Namespace) -> int:
    mapping = read_json(args.old)
    if not isinstance(mapping, dict):
        raise InputError(
            "expected a flat {field: graph name} JSON object, "
            f"not a JSON {type(mapping).__name__}",
            file=args.old,
        )
    graph = _graph(args.graph, args.debug)
    with about(args.old):
        spec = Spec.from_flat(mapping, graph, cls=args.cls)
    write_spec(spec, args.output)
    kinds: dict[str, int] = {}
    for record in spec.bindings():
        kinds[record.kind] = kinds.get(record.kind, 0) + 1
    counted = ", ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in sorted(kinds.items()))
    print(f"{args.output}: wrote a version 1 spec ({counted or 'no bindings'})", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- summary


def summary(args: argparse.Namespace) -> int:
    source = read_input(args.input)
    graph_file = source.file if source.is_bundle else args.graph
    meta_graph = None
    if graph_file is not None:
        open_local(graph_file).close()
        quiet_tensorflow(args.debug)
        with tensorflow_work("reading the graph", args.debug):
            meta_graph = bundle.read_meta_graph(graph_file)
    with about(source.file):
        table = ng.summary(source.spec, meta_graph, subtree=args.subtree, depth=args.depth)
    print(table)
    return EXIT_OK


# --------------------------------------------------------------------------- bundles


def _load_bundle(args: argparse.Namespace, subtree: str | None = None) -> tuple[Any, Any]:
    quiet_tensorflow(args.debug)
    with tensorflow_work("loading bundle", args.debug):
        # The command line never needs the model's own classes: the spec it writes
        # comes from the bundle's file, so unknown classes stay generic ng.Node objects.
        return ng.load(args.bundle, subtree=subtree, generic=True)


def export(args: argparse.Namespace) -> int:
    source = read_input(args.bundle)
    require_bundle(source, "export")
    with about(source.file):
        sub_spec = source.spec.subtree(args.subtree)
    model, session = _load_bundle(args, args.subtree)
    try:
        with tensorflow_work(f"writing {args.output}", args.debug):
            ng.export(model, session, args.output, freeze=args.freeze, spec=sub_spec)
    finally:
        session.close()
    frozen = " (frozen)" if args.freeze else ""
    print(f"{args.output}: exported {args.subtree}{frozen}", file=sys.stderr)
    return EXIT_OK


def serve_export(args: argparse.Namespace) -> int:
    source = read_input(args.bundle)
    require_bundle(source, "serve-export")
    model, session = _load_bundle(args)
    try:
        with tensorflow_work(f"writing {args.output}", args.debug):
            ng.export_saved_model(
                model,
                session,
                args.output,
                inputs=dict(args.inputs),
                outputs=dict(args.outputs),
                spec=source.spec,
            )
    finally:
        session.close()
    print(f"{args.output}: wrote a SavedModel (signature serving_default)", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- scan


def scan(args: argparse.Namespace) -> int:
    """Exit 0 when no bound field reaches an op that acts outside the session, else 1."""
    open_local(args.bundle).close()
    quiet_tensorflow(args.debug)
    with tensorflow_work("scanning the bundle", args.debug):
        report = ng.scan(args.bundle, subtree=args.subtree)
    print(report)
    return EXIT_OK if report.ok else EXIT_DIFFERENT


#: Command name -> its function, in the order ``--help`` lists them.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "show": show,
    "flatten": flatten,
    "summary": summary,
    "scan": scan,
    "check": check,
    "diff": diff,
    "rescope": rescope,
    "convert": convert,
    "upgrade": upgrade,
    "export": export,
    "serve-export": serve_export,
}
