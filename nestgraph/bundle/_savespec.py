"""The spec a bundle is written with: walked, checked, and its large arrays.

``_spec_of`` walks the model for ``save``, ``dumps`` and ``export``, refusing
elements of another graph (``walk_in``) and going through ``spec_for_save``
(nothing lost silently); NumPy arrays too large to write inline are collected
on the way (``_numpyleaves.collecting_arrays``), and ``_array_members`` gives
their ``.npy`` members, with the values they have when the bundle is written.
"""

from __future__ import annotations

from typing import Any

from nestgraph._numpyleaves import collecting_arrays, member_name, npy_bytes
from nestgraph.bundle._sessions import raw_session
from nestgraph.convertible import spec_for_save
from nestgraph.errors import BindingError, Problem
from nestgraph.nodes import Leaf, iter_nodes
from nestgraph.paths import PathTuple, format_path
from nestgraph.spec import Spec
from nestgraph.walker import walk

__all__ = ["walk_in"]


def _spec_of(model: Any, spec: Spec | None, session: Any, stacklevel: int = 4) -> Spec:
    """The checked spec to write; ``stacklevel`` 4 names the line that called the public API.

    A walked model's elements must all live in ``session.graph``: two models
    built in separate graphs with the same names would otherwise pass the
    name check, and the bundle would hold the other graph's weights.
    """
    if spec is not None and not isinstance(spec, Spec):
        raise TypeError(f"spec must be an ng.Spec, not {type(spec).__name__}")
    arrays: dict[str, Any] = {}
    if spec is None:
        with collecting_arrays() as arrays:
            spec = walk_in(model, raw_session(session).graph)
    # One frame for spec_for_save itself, one for this function, one for the API.
    checked = spec_for_save(model, spec, stacklevel=stacklevel)
    if arrays:
        checked._arrays = arrays
    return checked


def _array_members(spec: Spec) -> dict[str, bytes]:
    """The ``.npy`` members of the arrays ``spec``'s ``array`` leaves name, as they are now."""
    if not spec._arrays:
        return {}  # the common case: no walk collected any, so no tree walk either
    names = {member_name(node) for _, node in iter_nodes(spec.root) if isinstance(node, Leaf)}
    return {
        name: npy_bytes(spec._arrays[name])
        for name in sorted(n for n in names if n)
        if name in spec._arrays
    }


def walk_in(model: Any, graph: Any) -> Spec:
    """``to_graph(model)``, refusing (``BindingError``) elements of a graph other than ``graph``."""
    foreign: list[Problem] = []

    def check_graph(path: PathTuple, value: Any) -> None:
        element_graph = getattr(value, "graph", None)
        if element_graph is not None and element_graph is not graph:
            name = getattr(value, "name", type(value).__name__)
            foreign.append(Problem(format_path(path), f"{name!r} is not in session.graph"))

    spec = Spec(walk(model, on_leaf=check_graph))
    if foreign:
        raise BindingError(
            f"{len(foreign)} element(s) of the model belong to another tf.Graph than "
            "the session's (a model built in a different graph, or the wrong session); "
            "the bundle would hold that graph's names with this session's weights:\n"
            + "\n".join(f"  {problem}" for problem in foreign),
            path=foreign[0].path,
        )
    return spec
