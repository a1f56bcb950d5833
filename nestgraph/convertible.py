"""``GraphConvertible`` and ``to_graph``: the model-facing face of walker and binder.

A ``GraphConvertible`` subclass is trusted (rebuilt without ``allow`` when its
module is imported) and rebuilt lazily: its fields are set on first access.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from . import registry
from ._objects import LazyFields
from .binding import bind
from .spec import Spec
from .walker import walk

__all__ = ["GraphConvertible", "to_graph"]

T = TypeVar("T")


def to_graph(model: Any, fields: Iterable[str] | Mapping[str, Any] | None = None) -> Spec:
    """Walk ``model`` into a ``Spec``.

    ``fields`` limits the root object to those fields in that order (a mapping
    such as ``model.__dict__`` contributes its keys).
    """
    return Spec(walk(model, fields))


class GraphConvertible(LazyFields):
    """Mixin for model classes: walk with ``.to_graph()``, bind with ``.from_graph()``.

    Subclasses may be rebuilt from a spec without ``allow`` (when their module is
    imported), and their sub-objects are rebuilt lazily.
    """

    def to_graph(self, fields: Iterable[str] | Mapping[str, Any] | None = None) -> Spec:
        """This object's spec; ``fields`` limits it to those fields, in that order."""
        return to_graph(self, fields)

    def from_graph(self: T, spec: Spec | Mapping[str, Any], graph: Any = None, **kwargs: Any) -> T:
        """Bind this existing instance to ``graph`` as described by ``spec``.

        Accepts the keyword arguments of ``ng.from_graph`` (``subtree``,
        ``import_scope``, ``scope_map``, ``allow``, ``generic``, ``session``).
        ``__init__`` is not called again; the fields in the spec are set on ``self``.
        """
        bind(spec, graph, target=self, **kwargs)
        return self


registry.trust_subclasses(GraphConvertible)
