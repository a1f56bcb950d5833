"""``GraphConvertible`` and ``to_graph``: the model-facing face of walker and binder.

A ``GraphConvertible`` subclass is trusted (rebuilt without ``allow`` when its
module is imported) and rebuilt lazily: its fields are set on first access.
``spec_for_save`` is the walk every writer of bundles makes, so nothing a
model holds is lost without a word.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from . import registry
from ._objects import LazyFields
from .binding import bind
from .errors import WalkError
from .nodes import Skipped
from .spec import Spec
from .walker import walk

__all__ = ["GraphConvertible", "SkippedFieldsWarning", "spec_for_save", "to_graph"]

T = TypeVar("T")


def to_graph(model: Any, fields: Iterable[str] | Mapping[str, Any] | None = None) -> Spec:
    """Walk ``model`` into a ``Spec``.

    ``fields`` limits the root object to those fields in that order (a mapping
    such as ``model.__dict__`` contributes its keys).
    """
    return Spec(walk(model, fields))


class SkippedFieldsWarning(UserWarning):
    """Fields of a saved model that nestgraph could not record (listed with their reasons)."""


def spec_for_save(model: Any, spec: Spec | None = None, *, stacklevel: int = 3) -> Spec:
    """The spec to store with ``model`` in a bundle; refuses one that would save nothing.

    Raises ``WalkError`` when the model itself is skipped or its spec binds no
    graph element (the bundle would load back as nothing useful). Otherwise emits
    one ``SkippedFieldsWarning`` listing every skipped path and its reason, if any.
    ``stacklevel`` points the warning at the caller's ``ng.save`` line.
    """
    if spec is None:
        spec = to_graph(model)
    if isinstance(spec.root, Skipped):
        raise WalkError(
            f"the model itself cannot be recorded ({spec.root.reason}); nothing would be saved",
            path="",
        )
    if not spec.flatten():
        raise WalkError(
            "the model binds no tensor, op or variable, so a bundle of it would hold no "
            "model; check that its fields hold graph elements"
            + (f" (skipped: {', '.join(spec.skipped)})" if spec.skipped else ""),
            path="",
        )
    skipped = spec.skipped
    if skipped:
        listed = "\n".join(f"  {path}: {reason}" for path, reason in skipped.items())
        warnings.warn(
            SkippedFieldsWarning(
                f"{len(skipped)} field{'s' if len(skipped) != 1 else ''} not recorded "
                f"(they come back as skipped markers):\n{listed}"
            ),
            stacklevel=stacklevel,
        )
    return spec


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
