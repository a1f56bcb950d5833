"""The package version, defined once: in ``pyproject.toml``.

An installed package (a wheel, or ``pip install -e .``) reports it through its
metadata. A source checkout that was never installed reads it from the
``pyproject.toml`` next to the package, so ``PYTHONPATH=. python -m nestgraph``
and a bundle's manifest still name the real version.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

__all__ = ["__version__"]

_UNKNOWN = "0+unknown"
_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"', re.MULTILINE)


def _from_source_tree() -> str | None:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    if 'name = "nestgraph"' not in text:
        return None  # some other project's file
    match = _VERSION_LINE.search(text)
    return match.group(1) if match else None


def _version() -> str:
    try:
        return metadata.version("nestgraph")
    except metadata.PackageNotFoundError:
        return _from_source_tree() or _UNKNOWN


__version__ = _version()
