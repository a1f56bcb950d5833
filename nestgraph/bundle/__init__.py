"""Bundles: a model's graph, weights and spec in one file, and back.

The public face of the bundle layer. ``_container`` (the zip format) needs no
TensorFlow, so reading a bundle's spec stays light; the save and load paths in
``_api`` import TensorFlow and are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestgraph.bundle._api import dumps, export, export_saved_model, load, loads, save

__all__ = ["dumps", "export", "export_saved_model", "load", "loads", "save"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nestgraph.bundle import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'nestgraph.bundle' has no attribute {name!r}")
