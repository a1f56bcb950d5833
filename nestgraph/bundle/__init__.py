"""Bundles: a model's graph, weights and spec in one file, and back.

The public face of the bundle layer. ``_container`` (the zip format) needs no
TensorFlow, so reading a bundle's spec stays light; the save and load paths in
``_api`` import TensorFlow and are loaded on first use. ``_inspect`` looks at
bundle files (sniff, spec, graph) without loading them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestgraph.bundle._api import dumps, export, export_saved_model, load, loads, save
    from nestgraph.bundle._hook import BundleSaverHook, latest_bundle
    from nestgraph.bundle._inspect import import_graph, is_bundle, read_meta_graph, read_spec

_INSPECT_NAMES = frozenset({"import_graph", "is_bundle", "read_meta_graph", "read_spec"})
_HOOK_NAMES = frozenset({"BundleSaverHook", "latest_bundle"})

__all__ = [
    "BundleSaverHook",
    "dumps",
    "export",
    "export_saved_model",
    "import_graph",
    "is_bundle",
    "latest_bundle",
    "load",
    "loads",
    "read_meta_graph",
    "read_spec",
    "save",
]


def __getattr__(name: str) -> Any:
    if name in _INSPECT_NAMES:
        from nestgraph.bundle import _inspect

        return getattr(_inspect, name)
    if name in _HOOK_NAMES:
        from nestgraph.bundle import _hook

        return getattr(_hook, name)
    if name in __all__:
        from nestgraph.bundle import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'nestgraph.bundle' has no attribute {name!r}")
