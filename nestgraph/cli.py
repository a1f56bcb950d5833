"""The ``nestgraph`` command line: a thin layer over the public API.

Commands that only read specs (``show``, ``flatten``, ``diff``, ``rescope``,
``convert``, and ``flatten`` on a bundle) never import TensorFlow, so they
answer at once. TensorFlow is imported, lazily, only where a graph is needed:
``check``, ``show`` on a bundle (for dtypes and shapes), ``export`` and
``serve-export``.

A bundle is told from a spec by its content (a zip file), not by its name.

Exit status: 0 ok; 1 differences or problems found (``check``, ``diff``);
2 bad usage or bad input, reported as one ``nestgraph: error: ...`` message on
stderr (``--debug`` adds the traceback); 3 an internal error (a bug).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, TextIO

from . import __version__
from ._atomic import is_remote
from .bundle._container import BundleContents, unpack
from .errors import NestgraphError, SpecError
from .nodes import Leaf, SpecNode, describe, iter_nodes
from .paths import PathTuple, format_path
from .spec import Spec
from .specio import load_spec, save_spec

__all__ = ["EXIT_DIFFERENT", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "InputError", "main"]

EXIT_OK = 0
EXIT_DIFFERENT = 1  # check found problems, diff found differences
EXIT_USAGE = 2  # bad usage (argparse's own code) or bad input
EXIT_INTERNAL = 3  # a bug: never mistaken for "differences found"
_EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE

PROG = "nestgraph"
ROOT_LABEL = "<root>"
# Zip local-file header, and the end-of-archive record an empty zip starts with.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_BUNDLE_SPEC_SOURCE = "{file}:spec.yaml"  # the name nestgraph.bundle gives it, too
_MAX_PATH_COLUMN = 60

_ERROR_LINE = "{prog}: error: {message}"
_INTERNAL_LINE = "{prog}: internal error: {kind}: {message} (rerun with --debug for the traceback)"


class InputError(Exception):
    """Bad input the command line itself detects (a file that is not what it should be)."""


# --------------------------------------------------------------------------- progress


def _ellipsis(stream: TextIO) -> str:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return "…" if encoding == "utf8" else "..."


@contextlib.contextmanager
def progress(label: str, stream: TextIO | None = None) -> Iterator[None]:
    """Report ``label... done in 1.2 s`` on ``stream`` (stderr), only when it is a terminal.

    Piped or redirected output stays clean, so scripts see only results.
    """
    out = sys.stderr if stream is None else stream
    isatty = getattr(out, "isatty", None)
    if not (callable(isatty) and isatty()):
        yield
        return
    out.write(f"{label}{_ellipsis(out)} ")
    out.flush()
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        out.write("failed\n")
        out.flush()
        raise
    out.write(f"done in {time.perf_counter() - start:.1f} s\n")
    out.flush()


# --------------------------------------------------------------------------- TensorFlow


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 (TensorFlow's native log lines).

    TensorFlow's C++ side logs on import and on session creation (CUDA probes,
    absl notices) whatever Python asks. The held-back text is replayed if the
    block fails unexpectedly, so nothing needed to understand a crash is lost.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        replay = True
        try:
            yield
            replay = False
        except (NestgraphError, InputError):
            replay = False  # reported in one line by main; the log lines would be noise
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if replay:
                held.seek(0)
                sys.stderr.write(held.read().decode("utf-8", "replace"))
                sys.stderr.flush()


@contextlib.contextmanager
def _tensorflow_work(label: str, debug: bool) -> Iterator[None]:
    """A slow TensorFlow step: progress on a terminal, native log lines held back."""
    quiet = contextlib.nullcontext() if debug else _native_stderr_captured()
    with progress(label), quiet:
        yield


def _tensorflow(debug: bool) -> Any:
    """Import TensorFlow (once), quietly unless ``debug``."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _tensorflow_work("loading TensorFlow", debug):
            import tensorflow  # noqa: F401
    tf: Any = sys.modules["tensorflow"]
    if not debug:
        tf.get_logger().setLevel("ERROR")
    return tf


def _import_graph(data: bytes, file: str, debug: bool) -> Any:
    """A new ``tf.Graph`` holding the MetaGraphDef in ``data`` (binary or text protobuf)."""
    tf = _tensorflow(debug)
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError

    meta_graph = tf.compat.v1.MetaGraphDef()
    try:
        meta_graph.ParseFromString(data)
    except DecodeError:
        try:
            text_format.Parse(data.decode("utf-8"), meta_graph)
        except (UnicodeDecodeError, text_format.ParseError):
            raise InputError(
                f"{file}: not a MetaGraphDef (neither a binary nor a text protobuf); "
                "expected a .meta file written by tf.compat.v1.train.export_meta_graph "
                "or Saver.save, or a bundle"
            ) from None
    if not meta_graph.graph_def.node:
        raise InputError(f"{file}: the MetaGraphDef holds no graph (no nodes)")
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as exc:
        raise InputError(f"{file}: cannot import the graph: {exc}") from None
    return graph


# --------------------------------------------------------------------------- reading inputs


@dataclass(frozen=True)
class _Input:
    """A spec file, or a bundle with its spec and verified parts."""

    file: str
    spec: Spec
    bundle: BundleContents | None = None

    @property
    def is_bundle(self) -> bool:
        return self.bundle is not None


def _open_local(file: str) -> IO[bytes]:
    if is_remote(file):
        raise InputError(
            f"{file}: the command line reads local files only; copy it here first "
            "(the Python API reads scheme:// paths)"
        )
    try:
        return open(file, "rb")
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{file}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror or exc}") from None


def _head(file: str, size: int = 4) -> bytes:
    with _open_local(file) as stream:
        return bytes(stream.read(size))


def _is_bundle(file: str) -> bool:
    return _head(file)[:4] in _ZIP_MAGIC


def _read_bundle(file: str) -> BundleContents:
    # The command line never needs the weights: skip reading and hashing them.
    with _open_local(file) as stream:
        return unpack(stream, file, checkpoint=False)


def _read_input(file: str) -> _Input:
    """The spec in ``file``: a spec file (YAML, or JSON by extension) or a bundle."""
    head = _head(file, 1024)
    if head[:4] in _ZIP_MAGIC:
        contents = _read_bundle(file)
        source = _BUNDLE_SPEC_SOURCE.format(file=file)
        return _Input(file, Spec.from_yaml(contents.spec, source=source), contents)
    if _looks_binary(head):
        raise InputError(
            f"{file}: binary data, not a spec; expected a YAML or JSON spec, or a bundle "
            "(a .meta MetaGraphDef is only read by 'check', as its second argument)"
        )
    return _Input(file, load_spec(file))


@contextlib.contextmanager
def _about(file: str) -> Iterator[None]:
    """Name ``file`` in a spec error that does not say which file it concerns."""
    try:
        yield
    except SpecError as exc:
        if exc.source is not None:
            raise
        raise InputError(f"{file}: {exc.message}") from exc


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _write_spec(spec: Spec, file: str) -> None:
    """``save_spec`` (atomic); a file rewritten in place keeps its permissions."""
    if is_remote(file):
        raise InputError(f"{file}: the command line writes local files only")
    try:
        mode = os.stat(file).st_mode if os.path.isfile(file) else None
        save_spec(spec, file)
        if mode is not None:
            # The atomic write goes through a private (0600) temporary file.
            os.chmod(file, mode & 0o7777)
    except IsADirectoryError:
        raise InputError(f"cannot write {file}: it is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot write {file}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- describing nodes


def _path_text(path: PathTuple) -> str:
    return format_path(path) if path else ROOT_LABEL


def _scalar_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _table(rows: Sequence[Sequence[str]]) -> Iterator[str]:
    """Rows as aligned columns.

    A column is as wide as its widest cell among the rows that have something
    after it, so one long last cell (a class path) does not push the others
    right; the path column is capped so one very long path cannot either.
    """
    filled = [list(row[: max((i + 1 for i, c in enumerate(row) if c), default=0)]) for row in rows]
    columns = max((len(row) for row in filled), default=0)
    width = [
        max((len(row[i]) for row in filled if len(row) > i + 1), default=0)
        for i in range(columns - 1)
    ]
    if width:
        width[0] = min(width[0], _MAX_PATH_COLUMN)
    for row in filled:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], width, strict=False)]
        yield "  ".join([*cells, *row[-1:]])


# --------------------------------------------------------------------------- show


def _graph_types(graph: Any, tf: Any) -> Callable[[SpecNode], str]:
    """A function giving the dtype and shape (or op type) a binding has in ``graph``."""
    variables: dict[str, Any] = {}
    for key in graph.get_all_collection_keys():
        for item in graph.get_collection(key):
            if isinstance(item, tf.Variable):
                variables.setdefault(item.name, item)

    def typed(dtype: Any, shape: Any) -> str:
        return f"{tf.as_dtype(dtype).base_dtype.name} {shape}"

    def tensor(name: str) -> Any:
        try:
            return graph.get_tensor_by_name(name)
        except (KeyError, ValueError):
            return None

    def describe(node: SpecNode) -> str:
        if not isinstance(node, Leaf) or not node.names:
            return ""
        name = node.names[0]
        if node.kind == "op":
            try:
                return f"[{graph.get_operation_by_name(name).type}]"
            except (KeyError, ValueError):
                return "<not in the graph>"
        if node.kind == "variable" and name in variables:
            variable = variables[name]
            return typed(variable.dtype, variable.shape)
        if node.kind in ("tensor", "variable"):
            found = tensor(name)
            return "<not in the graph>" if found is None else typed(found.dtype, found.shape)
        if node.kind == "sparse":
            values, dense_shape = tensor(node.names[1]), tensor(node.names[2])
            if values is None or dense_shape is None:
                return "<not in the graph>"
            rank = dense_shape.shape[0] if dense_shape.shape.rank == 1 else None
            return f"{values.dtype.base_dtype.name} sparse, rank {'?' if rank is None else rank}"
        return ""

    return describe


def _cmd_show(args: argparse.Namespace) -> int:
    source = _read_input(args.input)
    with _about(source.file):
        start, top = source.spec.resolve(args.subtree if args.subtree is not None else ())
    types: Callable[[SpecNode], str] | None = None
    if source.bundle is not None and not args.no_types:
        tf = _tensorflow(args.debug)
        with _tensorflow_work("reading the bundle's graph", args.debug):
            graph = _import_graph(source.bundle.graph, f"{source.file}:graph.pb", args.debug)
        types = _graph_types(graph, tf)
    rows = []
    for path, node in iter_nodes(top, start):
        kind, detail = describe(node)
        row = [_path_text(path), kind, detail]
        if types is not None:
            row.append(types(node))
        rows.append(row)
    for line in _table(rows):
        print(line)
    return EXIT_OK


# --------------------------------------------------------------------------- flatten


def _cmd_flatten(args: argparse.Namespace) -> int:
    spec = _read_input(args.input).spec
    for record in spec.bindings():
        print(f"{record.path}\t{record.kind}\t{record.name}")
    return EXIT_OK


# --------------------------------------------------------------------------- check


def _cmd_check(args: argparse.Namespace) -> int:
    spec_input = _read_input(args.spec)
    if _is_bundle(args.graph):
        data = _read_bundle(args.graph).graph
        graph_file = f"{args.graph}:graph.pb"
    else:
        with _open_local(args.graph) as stream:
            data = stream.read()
        graph_file = args.graph
    _tensorflow(args.debug)  # before the progress line below, which it would interrupt
    with _tensorflow_work("importing the graph", args.debug):
        graph = _import_graph(data, graph_file, args.debug)
    from .binding import check

    with _about(spec_input.file):
        report = check(
            spec_input.spec,
            graph,
            subtree=args.subtree,
            import_scope=args.import_scope,
            scope_map=dict(args.scope_map or ()),
        )
    for finding in report.problems:
        # Compiler-style "file:line:" (lines are known for YAML files), for editors to jump to.
        where = spec_input.file
        if not spec_input.is_bundle and finding.line is not None:
            where += f":{finding.line}"
        print(f"{where}: {finding.path or ROOT_LABEL}: {finding.message}")
    total = len(report.findings)
    if report.ok:
        print(f"ok: all {total} bindings found in {args.graph}")
        return EXIT_OK
    print(f"{len(report.problems)} of {total} bindings have problems in {args.graph}")
    return EXIT_DIFFERENT


# --------------------------------------------------------------------------- diff


def _entries(spec: Spec) -> dict[str, tuple[str, str]]:
    return {_path_text(path): describe(node) for path, node in iter_nodes(spec.root)}


_CONTAINERS = frozenset({"list", "tuple", "dict"})
_CLASSED = frozenset({"object", "namedtuple"})
_BINDINGS = frozenset({"tensor", "op", "variable", "sparse"})
_DIFF_ORDER = ("removed", "added", "rebound", "class", "changed")


def _difference(old: tuple[str, str], new: tuple[str, str]) -> tuple[str, str] | None:
    """``(category, text)`` for one path present in both specs, or None when equal."""
    (old_kind, old_detail), (new_kind, new_detail) = old, new
    if old_kind == new_kind and old_kind in _CONTAINERS:
        return None  # their items are compared one by one
    if old == new:
        return None
    if old_kind == new_kind and old_kind in _CLASSED:
        return "class", f"{old_detail} -> {new_detail}"
    if old_kind in _BINDINGS and new_kind in _BINDINGS:
        return "rebound", f"{old_kind} {old_detail} -> {new_kind} {new_detail}"
    if old_kind == new_kind == "value":
        return "changed", f"{old_detail} -> {new_detail}"
    return "changed", f"{_entry_text(old)} -> {_entry_text(new)}"


def _entry_text(entry: tuple[str, str]) -> str:
    kind, detail = entry
    return kind if kind in _CONTAINERS else f"{kind} {detail}"


def _cmd_diff(args: argparse.Namespace) -> int:
    old = _entries(_read_input(args.a).spec)
    new = _entries(_read_input(args.b).spec)
    found: dict[str, list[tuple[str, str]]] = {category: [] for category in _DIFF_ORDER}
    for path, entry in old.items():
        if path not in new:
            found["removed"].append((path, _entry_text(entry)))
            continue
        difference = _difference(entry, new[path])
        if difference is not None:
            found[difference[0]].append((path, difference[1]))
    found["added"] = [(path, _entry_text(entry)) for path, entry in new.items() if path not in old]
    rows = [(category, path, text) for category in _DIFF_ORDER for path, text in found[category]]
    for line in _table(rows):
        print(line)
    if not rows:
        print(f"no differences between {args.a} and {args.b}")
        return EXIT_OK
    counts = ", ".join(f"{len(found[c])} {c}" for c in _DIFF_ORDER if found[c])
    print(f"{args.a} and {args.b} differ: {counts}")
    return EXIT_DIFFERENT


# --------------------------------------------------------------------------- writing specs


def _cmd_rescope(args: argparse.Namespace) -> int:
    source = _read_input(args.spec)
    out = args.output or args.spec
    if source.is_bundle and args.output is None:
        raise InputError(
            f"{args.spec}: is a bundle; rescope does not rewrite bundles in place, "
            "pass -o OUT.yaml to write the rescoped spec"
        )
    with _about(source.file):
        rescoped = source.spec.rescope(args.old_prefix, args.new_prefix, subtree=args.subtree)
    before = source.spec.bindings()
    changed = sum(a.name != b.name for a, b in zip(before, rescoped.bindings(), strict=True))
    _write_spec(rescoped, out)
    print(
        f"{out}: {changed} name{'' if changed == 1 else 's'} rescoped "
        f"{args.old_prefix!r} -> {args.new_prefix!r}",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    spec = _read_input(args.spec).spec
    _write_spec(spec, args.output)
    kind = "JSON" if args.output.lower().endswith(".json") else "YAML"
    print(f"{args.output}: wrote the spec as {kind}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- bundles


def _load_bundle(args: argparse.Namespace, subtree: str | None = None) -> tuple[Any, Any]:
    _tensorflow(args.debug)
    from . import bundle

    with _tensorflow_work("loading bundle", args.debug):
        # The command line never needs the model's own classes: the spec it writes
        # comes from the bundle's file, so unknown classes stay generic ng.Node objects.
        return bundle.load(args.bundle, subtree=subtree, generic=True)


def _cmd_export(args: argparse.Namespace) -> int:
    source = _read_input(args.bundle)
    if not source.is_bundle:
        raise InputError(f"{args.bundle}: not a bundle (export reads a bundle written by ng.save)")
    with _about(source.file):
        sub_spec = source.spec.subtree(args.subtree)
    model, session = _load_bundle(args, args.subtree)
    from . import bundle

    try:
        with _tensorflow_work(f"writing {args.output}", args.debug):
            bundle.export(model, session, args.output, freeze=args.freeze, spec=sub_spec)
    finally:
        session.close()
    frozen = " (frozen)" if args.freeze else ""
    print(f"{args.output}: exported {args.subtree}{frozen}", file=sys.stderr)
    return EXIT_OK


def _cmd_serve_export(args: argparse.Namespace) -> int:
    source = _read_input(args.bundle)
    if not source.is_bundle:
        raise InputError(
            f"{args.bundle}: not a bundle (serve-export reads a bundle written by ng.save)"
        )
    model, session = _load_bundle(args)
    from . import bundle

    try:
        with _tensorflow_work(f"writing {args.output}", args.debug):
            bundle.export_saved_model(
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


# --------------------------------------------------------------------------- parser


def _name_equals_path(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def _prefix_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old, new


def _unique_names(
    parser: argparse.ArgumentParser, pairs: Sequence[tuple[str, str]], opt: str
) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            parser.error(f"{opt} {name!r} given twice")
        seen.add(name)


_EPILOG = """\
exit status: 0 ok, 1 differences or problems found, 2 bad usage or bad input,
3 internal error. A bundle is recognised by its content (a zip file).
Run 'nestgraph COMMAND --help' for a command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nestgraph`` command."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite a --debug given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, compare and convert nestgraph specs and bundles.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, run: Callable[[argparse.Namespace], int], summary: str, epilog: str
    ) -> Any:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    show = command(
        "show",
        _cmd_show,
        "print the tree, one line per field: dotted path, kind, graph name or class "
        "(with a bundle also dtype and shape)",
        "example:\n  nestgraph show model.yaml --subtree encoder.layers.0",
    )
    show.add_argument("input", metavar="SPEC|BUNDLE")
    show.add_argument("--subtree", metavar="PATH", help="show only this part (a dotted path)")
    show.add_argument(
        "--no-types",
        action="store_true",
        help="with a bundle, skip dtypes and shapes (answers without importing TensorFlow)",
    )

    flatten = command(
        "flatten",
        _cmd_flatten,
        "print PATH<TAB>KIND<TAB>NAME, one line per binding, for grep and diff",
        "example:\n  nestgraph flatten model.ng | grep layer_2/",
    )
    flatten.add_argument("input", metavar="SPEC|BUNDLE")

    check = command(
        "check",
        _cmd_check,
        "look up every binding of a spec in a graph; report each problem with the "
        "closest existing name (exit 1 when there are problems)",
        "examples:\n  nestgraph check model.yaml run/model.ng\n"
        "  nestgraph check model.yaml ckpt/model-1000.meta --scope-map tower_0/=tower_1/",
    )
    check.add_argument("spec", metavar="SPEC|BUNDLE", help="the spec (or the bundle holding it)")
    check.add_argument(
        "graph", metavar="BUNDLE|META_GRAPH", help="a bundle or a .meta MetaGraphDef file"
    )
    check.add_argument("--subtree", metavar="PATH", help="check only this part of the spec")
    check.add_argument("--import-scope", metavar="SCOPE", help="names were imported under SCOPE")
    check.add_argument(
        "--scope-map",
        metavar="OLD=NEW",
        type=_prefix_pair,
        action="append",
        help="rewrite the name prefix OLD to NEW before looking up (repeatable)",
    )

    diff = command(
        "diff",
        _cmd_diff,
        "list the removed, added and rebound paths, class and value changes "
        "between two specs or bundles (exit 1 when they differ)",
        "example:\n  nestgraph diff old.yaml new.ng",
    )
    diff.add_argument("a", metavar="A", help="the old spec or bundle")
    diff.add_argument("b", metavar="B", help="the new spec or bundle")

    rescope = command(
        "rescope",
        _cmd_rescope,
        "re-prefix graph names: every name starting with OLD_PREFIX starts with NEW_PREFIX instead",
        "examples:\n  nestgraph rescope model.yaml tower_0/ tower_1/ --subtree towers.1\n"
        "  nestgraph rescope model.ng tower_0/ tower_1/ -o tower_1.yaml\n\n"
        "Without -o the spec file is rewritten in place (atomically); the rewritten\n"
        "file is regenerated, so YAML comments are not kept.",
    )
    rescope.add_argument("spec", metavar="SPEC")
    rescope.add_argument("old_prefix", metavar="OLD_PREFIX")
    rescope.add_argument("new_prefix", metavar="NEW_PREFIX")
    rescope.add_argument("--subtree", metavar="PATH", help="rename only names bound in this part")
    rescope.add_argument(
        "-o", "--output", metavar="OUT", help="write here instead of rewriting SPEC in place"
    )

    convert = command(
        "convert",
        _cmd_convert,
        "write a spec as YAML or JSON, chosen by the output's extension (.json: JSON)",
        "examples:\n  nestgraph convert model.yaml -o model.json\n"
        "  nestgraph convert run/model.ng -o model.yaml   # the spec inside a bundle",
    )
    convert.add_argument("spec", metavar="SPEC|BUNDLE")
    convert.add_argument("-o", "--output", metavar="OUT", required=True)

    export = command(
        "export",
        _cmd_export,
        "write a standalone bundle of one sub-network",
        "example:\n  nestgraph export run/model.ng --subtree encoder -o encoder.ng --freeze",
    )
    export.add_argument("bundle", metavar="BUNDLE")
    export.add_argument("--subtree", metavar="PATH", required=True, help="the sub-network")
    export.add_argument("-o", "--output", metavar="OUT", required=True)
    export.add_argument(
        "--freeze", action="store_true", help="turn the variables into constants (no checkpoint)"
    )

    serve = command(
        "serve-export",
        _cmd_serve_export,
        "write a SavedModel with one serving_default signature",
        "example:\n  nestgraph serve-export run/model.ng -o served/ "
        "--input x=x --output probs=head.probs\n\n"
        "PATH is a dotted spec path of a tensor binding, or a graph tensor name (x:0).",
    )
    serve.add_argument("bundle", metavar="BUNDLE")
    # -o is the directory; --output (no short form) is a signature output, as documented.
    serve.add_argument(
        "-o", "--export-dir", dest="output", metavar="DIR", required=True, help="a new directory"
    )
    serve.add_argument(
        "--input",
        dest="inputs",
        metavar="NAME=PATH",
        type=_name_equals_path,
        action="append",
        required=True,
        help="a signature input (repeatable)",
    )
    serve.add_argument(
        "--output",
        dest="outputs",
        metavar="NAME=PATH",
        type=_name_equals_path,
        action="append",
        required=True,
        help="a signature output (repeatable)",
    )
    return parser


# --------------------------------------------------------------------------- main


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, NestgraphError):
        return exc.message
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Bad usage exits through argparse (``SystemExit(2)``); everything else returns.

    >>> status = main(["flatten", "model.yaml"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints it and exits with 2
    if args.command == "serve-export":
        _unique_names(parser, args.inputs, "--input")
        _unique_names(parser, args.outputs, "--output")
    debug = bool(args.debug)
    try:
        status: int = args.run(args)
        sys.stdout.flush()
        return status
    except (NestgraphError, InputError) as exc:
        if debug:
            traceback.print_exc()
        print(_ERROR_LINE.format(prog=PROG, message=_error_message(exc)), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`nestgraph flatten big.ng | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
            print(f"{PROG}: internal error (a bug; please report it)", file=sys.stderr)
        else:
            line = _INTERNAL_LINE.format(prog=PROG, kind=type(exc).__name__, message=exc)
            print(line, file=sys.stderr)
        return EXIT_INTERNAL
