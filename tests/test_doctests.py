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


@pytest.mark.parametrize("name", ["nestgraph", *MODULES])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
