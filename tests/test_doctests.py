"""Every docstring example in the package runs, and shows what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nestgraph

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(nestgraph.__path__, prefix="nestgraph.")
    if info.name != "nestgraph.__main__"
)
# Modules whose examples are their documentation: they must keep having some.
WITH_EXAMPLES = {
    "nestgraph",
    "nestgraph._table",
    "nestgraph._specdiff",
    "nestgraph._summary",
    "nestgraph.spec",
    "nestgraph.bundle._inspect",
    "nestgraph.cli",
    "nestgraph.cli._inputs",
    "nestgraph.cli.terminal",
    "nestgraph.nodes",
    "nestgraph.errors",
    "nestgraph.paths",
    "nestgraph.registry",
    "nestgraph.binding",
}


@pytest.mark.parametrize("name", ["nestgraph", *MODULES])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{name} has no docstring examples left"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
