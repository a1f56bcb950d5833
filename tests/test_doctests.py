"""The docstring examples of the command line, diff, summary, migration and inspection run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "nestgraph._table",
    "nestgraph._specdiff",
    "nestgraph._summary",
    "nestgraph.spec",
    "nestgraph.bundle._inspect",
    "nestgraph.cli",
    "nestgraph.cli._inputs",
    "nestgraph.cli.terminal",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.attempted > 0, f"{name} has no docstring examples left"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
