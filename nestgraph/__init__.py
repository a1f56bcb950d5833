"""nestgraph: save, hand-edit and restore the structure of TensorFlow graph models.

>>> import nestgraph as ng
>>> spec = ng.to_graph(model)                    # doctest: +SKIP
>>> model = ng.from_graph(spec, graph)           # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

# Leaf handlers for TF1 model state, NumPy values and functions register at import.
from . import _functions, _numpyleaves, _tfleaves  # noqa: F401
from ._objects import Node, Placeholder, SkippedField, materialize
from .binding import CheckReport, Finding, check, from_graph
from .convertible import GraphConvertible, SkippedFieldsWarning, to_graph
from .errors import (
    BindingAndClassError,
    BindingError,
    BundleError,
    ClassNotAllowedError,
    NestgraphError,
    Problem,
    SpecError,
    WalkError,
)
from .registry import register, register_leaf
from .spec import BindingRecord, Spec
from .specio import load_spec, save_spec

try:
    __version__ = _metadata.version("nestgraph")
except _metadata.PackageNotFoundError:  # a source checkout that is not installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .bundle import dumps, export, export_saved_model, load, loads, save

# Bundles need TensorFlow; specs do not. Import the bundle layer on first use, so
# reading, editing and diffing specs (and the CLI's spec commands) stay light.
_BUNDLE_NAMES = frozenset({"dumps", "export", "export_saved_model", "load", "loads", "save"})


def __getattr__(name: str) -> Any:
    if name in _BUNDLE_NAMES:
        from . import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'nestgraph' has no attribute {name!r}")


__all__ = [
    "BindingAndClassError",
    "BindingError",
    "BindingRecord",
    "BundleError",
    "CheckReport",
    "ClassNotAllowedError",
    "Finding",
    "GraphConvertible",
    "NestgraphError",
    "Node",
    "Placeholder",
    "Problem",
    "SkippedField",
    "SkippedFieldsWarning",
    "Spec",
    "SpecError",
    "WalkError",
    "__version__",
    "check",
    "dumps",
    "export",
    "export_saved_model",
    "from_graph",
    "load",
    "load_spec",
    "loads",
    "materialize",
    "register",
    "register_leaf",
    "save",
    "save_spec",
    "to_graph",
]
