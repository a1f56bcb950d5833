"""nestgraph: save, hand-edit and restore the structure of TensorFlow graph models.

>>> import nestgraph as ng
>>> spec = ng.to_graph(model)                    # doctest: +SKIP
>>> model = ng.from_graph(spec, graph)           # doctest: +SKIP
"""

from __future__ import annotations

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
    "Spec",
    "SpecError",
    "__version__",
    "check",
    "from_graph",
    "load_spec",
    "register",
    "save_spec",
    "to_graph",
]
