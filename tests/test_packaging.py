"""The version is defined once (pyproject.toml); py.typed ships; CI installs the wheel."""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from pathlib import Path

import pytest

import nestgraph as ng
from nestgraph import _version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def test_the_version_is_the_one_in_pyproject() -> None:
    declared = re.search(r'^version = "([^"]+)"', PYPROJECT, flags=re.M)
    assert declared is not None
    assert ng.__version__ == declared.group(1)
    assert '__version__ = "' not in (ROOT / "nestgraph" / "__init__.py").read_text()


def test_a_checkout_that_is_not_installed_reads_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    try:
        assert importlib.reload(_version).__version__ == ng.__version__
        monkeypatch.setattr(_version, "_from_source_tree", lambda: None)
        assert _version._version() == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(_version)


def test_py_typed_ships_in_the_wheel() -> None:
    assert (ROOT / "nestgraph" / "py.typed").is_file()
    assert "[tool.setuptools.package-data]\n# PEP 561" in PYPROJECT
    assert 'nestgraph = ["py.typed"]' in PYPROJECT


def test_ci_installs_the_wheel_and_runs_the_quickstart_against_it() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test") < ci.index("make lint") < ci.index("make dist")
    assert "python3 -m venv" in ci and "nestgraph-*.whl" in ci
    assert 'nestgraph" --version' in ci and "readme_quickstart.py" in ci
    assert "--system-site-packages" not in ci
    assert (
        "\ndist: $(STAMP)\n\t$(PY) -m build --outdir $(DIST) .\n" in (ROOT / "Makefile").read_text()
    )
