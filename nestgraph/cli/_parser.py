"""The ``nestgraph`` argument parser: commands, options, help texts."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from nestgraph._version import __version__

from . import _commands

__all__ = ["PROG", "build_parser", "check_usage"]

PROG = "nestgraph"


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


def _depth(text: str) -> int:
    try:
        depth = int(text)
    except ValueError:
        depth = -1
    if depth < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return depth


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
        _commands.show,
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
        _commands.flatten,
        "print PATH<TAB>KIND<TAB>NAME, one line per binding, for grep and diff",
        "example:\n  nestgraph flatten model.ng | grep layer_2/",
    )
    flatten.add_argument("input", metavar="SPEC|BUNDLE")

    summary = command(
        "summary",
        _commands.summary,
        "print the model tree like Keras' model.summary(): one row per object with its "
        "class, bindings, parameters and bytes, and totals (parameters need a bundle or --graph)",
        "examples:\n  nestgraph summary run/model.ng --depth 1\n"
        "  nestgraph summary model.yaml --graph ckpt/model-1000.meta --subtree encoder\n\n"
        "The graph is read from the protobuf, never imported, and no weights are read.",
    )
    summary.add_argument("input", metavar="BUNDLE|SPEC")
    summary.add_argument("--subtree", metavar="PATH", help="summarise only this part")
    summary.add_argument(
        "--depth", metavar="N", type=_depth, help="rows down to N levels below the top (0: one row)"
    )
    summary.add_argument(
        "--graph",
        metavar="META_GRAPH|BUNDLE",
        help="with a spec file: the graph its variables' shapes and dtypes come from",
    )

    scan = command(
        "scan",
        _commands.scan,
        "list the ops that can act outside the session (files, network, Python callbacks, ...) "
        "that bound fields reach, with their dotted paths (exit 1 when there are any)",
        "examples:\n  nestgraph scan download/model.ng\n"
        "  nestgraph scan model.ng --subtree heads.cls\n\n"
        "The graph is read from the protobuf, never imported or run. ng.load refuses a\n"
        "bundle with findings unless it is given trusted=True.",
    )
    scan.add_argument("bundle", metavar="BUNDLE")
    scan.add_argument("--subtree", metavar="PATH", help="scan only what this part binds")

    check = command(
        "check",
        _commands.check,
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
        _commands.diff,
        "list the removed, added and rebound paths, class and value changes "
        "between two specs or bundles (exit 1 when they differ)",
        "example:\n  nestgraph diff old.yaml new.ng",
    )
    diff.add_argument("a", metavar="A", help="the old spec or bundle")
    diff.add_argument("b", metavar="B", help="the new spec or bundle")

    rescope = command(
        "rescope",
        _commands.rescope,
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
        _commands.convert,
        "write a spec as YAML or JSON, chosen by the output's extension (.json: JSON)",
        "examples:\n  nestgraph convert model.yaml -o model.json\n"
        "  nestgraph convert run/model.ng -o model.yaml   # the spec inside a bundle",
    )
    convert.add_argument("spec", metavar="SPEC|BUNDLE")
    convert.add_argument("-o", "--output", metavar="OUT", required=True)

    upgrade = command(
        "upgrade",
        _commands.upgrade,
        "turn an old flat {field: graph name} JSON dict into a versioned spec, reading "
        "each binding's kind from the graph",
        "example:\n  nestgraph upgrade old_fields.json ckpt/model-1000.meta -o model.yaml\n\n"
        "NAME:N is a tensor (a variable when a variable collection holds it), a name\n"
        "without :N an op. Dotted keys stay flat fields. Every name missing from the\n"
        "graph is reported at once, with the closest names.",
    )
    upgrade.add_argument("old", metavar="OLD.json", help="the flat dict, as JSON")
    upgrade.add_argument("graph", metavar="META_GRAPH|BUNDLE", help="the graph the names are in")
    upgrade.add_argument("-o", "--output", metavar="NEW.yaml", required=True)
    upgrade.add_argument(
        "--class",
        dest="cls",
        metavar="MODULE:QUALNAME",
        help="the root object's class path (default: the root is a dict)",
    )

    export = command(
        "export",
        _commands.export,
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
        _commands.serve_export,
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


def check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors argparse cannot see by itself (exit 2 with the usage line)."""
    if args.command == "serve-export":
        _unique_names(parser, args.inputs, "--input")
        _unique_names(parser, args.outputs, "--output")
