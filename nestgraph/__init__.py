"""nestgraph: save, hand-edit and restore the structure of TensorFlow graph models.

>>> import nestgraph as ng
>>> spec = ng.Spec.from_yaml("nestgraph: 1\\nroot: {dict: {x: tensor inputs/x:0, lr: 0.01}}")
>>> spec.flatten()
{'x': 'inputs/x:0'}
>>> print(spec.to_yaml(), end="")
nestgraph: 1
root:
  dict:
    x: tensor inputs/x:0
    lr: 0.01
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Leaf handlers for TF1 model state, NumPy values and functions register at import.
from . import _builtinleaves, _functions, _numpyleaves, _tfleaves  # noqa: F401
from ._objects import Node, Placeholder, SkippedField, materialize
from ._specdiff import SpecDiff
from ._version import __version__
from .binding import CheckReport, Finding, check, from_graph
from .classpath import UNSAFE_ALLOW_ALL
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

if TYPE_CHECKING:
    from ._summary import summary
    from .bundle import (
        BundleSaverHook,
        dumps,
        export,
        export_saved_model,
        latest_bundle,
        load,
        loads,
        save,
    )
    from .bundle._scan import ScanReport, scan

# Bundles need TensorFlow; specs do not. Import the bundle layer on first use, so
# reading, editing and diffing specs (and the CLI's spec commands) stay light.
_BUNDLE_NAMES = frozenset(
    {
        "BundleSaverHook",
        "dumps",
        "export",
        "export_saved_model",
        "latest_bundle",
        "load",
        "loads",
        "save",
    }
)
_SCAN_NAMES = frozenset({"ScanReport", "scan"})


def __getattr__(name: str) -> Any:
    if name in _BUNDLE_NAMES:
        from . import bundle

        return getattr(bundle, name)
    if name == "summary":
        from ._summary import summary

        return summary
    if name in _SCAN_NAMES:
        from .bundle import _scan

        return getattr(_scan, name)
    raise AttributeError(f"module 'nestgraph' has no attribute {name!r}")


__all__ = [
    "UNSAFE_ALLOW_ALL",
    "BindingAndClassError",
    "BindingError",
    "BindingRecord",
    "BundleError",
    "BundleSaverHook",
    "CheckReport",
    "ClassNotAllowedError",
    "Finding",
    "GraphConvertible",
    "NestgraphError",
    "Node",
    "Placeholder",
    "Problem",
    "ScanReport",
    "SkippedField",
    "SkippedFieldsWarning",
    "Spec",
    "SpecDiff",
    "SpecError",
    "WalkError",
    "__version__",
    "check",
    "dumps",
    "export",
    "export_saved_model",
    "from_graph",
    "latest_bundle",
    "load",
    "load_spec",
    "loads",
    "materialize",
    "register",
    "register_leaf",
    "save",
    "save_spec",
    "scan",
    "summary",
    "to_graph",
]
