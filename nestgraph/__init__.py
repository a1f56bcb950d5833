"""nestgraph: save, hand-edit and restore the structure of TensorFlow graph models.

>>> import nestgraph as ng
>>> spec = ng.to_graph(model)                    # doctest: +SKIP
>>> model = ng.from_graph(spec, graph)           # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .binding import CheckReport, Finding, GraphConvertible, Node, check, from_graph, to_graph
from .classpath import register
from .errors import (
    BindingError,
    BundleError,
    ClassNotAllowedError,
    NestgraphError,
    Problem,
    SpecError,
)
from .spec import BindingRecord, Spec
from .specio import load_spec, save_spec

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .bundle import dumps, export, export_saved_model, load, loads, save
    from .bundle._scan import ScanReport, scan

# Bundles need TensorFlow; specs do not. Import the bundle module on first use, so
# reading, editing and diffing specs (and the CLI's spec commands) stay light.
_BUNDLE_NAMES = frozenset({"dumps", "export", "export_saved_model", "load", "loads", "save"})
_SCAN_NAMES = frozenset({"ScanReport", "scan"})


def __getattr__(name: str) -> Any:
    if name in _BUNDLE_NAMES:
        from .bundle import _api as bundle

        return getattr(bundle, name)
    if name in _SCAN_NAMES:
        from .bundle import _scan

        return getattr(_scan, name)
    raise AttributeError(f"module 'nestgraph' has no attribute {name!r}")


__all__ = [
    "BindingError",
    "BindingRecord",
    "BundleError",
    "CheckReport",
    "ClassNotAllowedError",
    "Finding",
    "GraphConvertible",
    "NestgraphError",
    "Node",
    "Problem",
    "ScanReport",
    "Spec",
    "SpecError",
    "__version__",
    "check",
    "dumps",
    "export",
    "export_saved_model",
    "from_graph",
    "load",
    "load_spec",
    "loads",
    "register",
    "save",
    "save_spec",
    "scan",
    "to_graph",
]
