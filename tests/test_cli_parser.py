"""``nestgraph.cli._parser``: options, argument types and the usage checks argparse lacks."""

from __future__ import annotations

import pytest

from nestgraph.cli import _commands, _parser


def parse(*argv: str) -> object:
    parser = _parser.build_parser()
    args = parser.parse_args(list(argv))
    _parser.check_usage(parser, args)
    return args


def test_every_command_runs_its_function() -> None:
    inputs = {
        "show": ["m.yaml"],
        "flatten": ["m.yaml"],
        "summary": ["m.ng"],
        "scan": ["m.ng", "--subtree", "heads"],
        "check": ["m.yaml", "m.meta"],
        "diff": ["a", "b"],
        "rescope": ["m.yaml", "a/", "b/"],
        "convert": ["m.yaml", "-o", "m.json"],
        "upgrade": ["old.json", "m.meta", "-o", "new.yaml"],
        "export": ["m.ng", "--subtree", "enc", "-o", "e.ng"],
        "serve-export": ["m.ng", "-o", "d", "--input", "x=x", "--output", "p=probs"],
    }
    assert list(inputs) == list(_commands.COMMANDS)
    for name, argv in inputs.items():
        assert parse(name, *argv).run is _commands.COMMANDS[name]  # type: ignore[attr-defined]


def test_summary_and_upgrade_options() -> None:
    args = parse("summary", "m.yaml", "--depth", "2", "--subtree", "enc", "--graph", "m.meta")
    assert (args.depth, args.subtree, args.graph) == (2, "enc", "m.meta")  # type: ignore[attr-defined]
    args = parse("upgrade", "old.json", "m.meta", "-o", "new.yaml", "--class", "pkg:Model")
    assert (args.old, args.graph, args.output, args.cls) == (  # type: ignore[attr-defined]
        "old.json",
        "m.meta",
        "new.yaml",
        "pkg:Model",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "m.ng", "--depth", "-1"], "expected a whole number >= 0, got '-1'"),
        (["summary", "m.ng", "--depth", "two"], "expected a whole number >= 0, got 'two'"),
        (["check", "a", "b", "--scope-map", "nope"], "expected OLD=NEW, got 'nope'"),
        (["serve-export", "m", "-o", "d", "--input", "x", "--output", "p=q"], "expected NAME=PATH"),
        (
            ["serve-export", "m", "-o", "d", "--input", "x=a", "--input", "x=b", "--output", "p=q"],
            "--input 'x' given twice",
        ),
        (["upgrade", "old.json", "m.meta"], "the following arguments are required: -o/--output"),
    ],
)
def test_bad_usage_exits_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_debug_before_or_after_the_command() -> None:
    assert parse("--debug", "flatten", "m.yaml").debug is True  # type: ignore[attr-defined]
    assert parse("flatten", "m.yaml", "--debug").debug is True  # type: ignore[attr-defined]
    assert parse("flatten", "m.yaml").debug is False  # type: ignore[attr-defined]
