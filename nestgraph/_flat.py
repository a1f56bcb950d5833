"""Migration from the seed's flat ``{field: graph name}`` dicts to a versioned spec.

The seed's one-class ``to_graph`` wrote JSON such as
``{"x": "ExpandDims:0", "train_step": "Adam"}``. Each binding's kind is read
from the graph: a name with ``:N`` is a tensor, or a variable when a variable
collection holds a variable of that name; a name without is an op. A dotted key
stays one flat field (``"enc.w"`` is written ``["enc.w"]``): nesting is never
guessed.

The graph is taken as an argument and used only through its own methods, so this
module needs neither TensorFlow nor the spec layer: it returns the spec's dict
form, which ``Spec.from_flat`` validates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from .classpath import class_path_of
from .errors import BindingError, Problem, SpecError
from .paths import format_path

__all__ = ["flat_to_spec_dict"]

_TENSOR_NAME = re.compile(r"(?P<op>.+):(?P<index>\d+)\Z")
_CLOSEST = 3
_CLASS_PATH = re.compile(r"[^\s:]+:[^\s:]+\Z")


def _variable_names(graph: Any) -> set[str]:
    """The names of the variables in any collection (global, trainable, local, model...).

    A variable is told by its interface (``initializer`` and ``assign``), so no
    TensorFlow type is needed; the graph's collections hold nothing else like it.
    """
    names: set[str] = set()
    for key in graph.get_all_collection_keys():
        for item in graph.get_collection(key):
            if hasattr(item, "initializer") and hasattr(item, "assign"):
                name = getattr(item, "name", None)
                if isinstance(name, str):
                    names.add(name)
    return names


def _op(graph: Any, name: str) -> Any | None:
    try:
        return graph.get_operation_by_name(name)
    except (KeyError, ValueError, TypeError):
        return None


class _Names:
    """Every op and tensor name of the graph, built on first use (for suggestions only)."""

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self._ops: list[str] | None = None
        self._tensors: list[str] | None = None

    def closest(self, name: str, tensor: bool) -> list[str]:
        if self._ops is None:
            operations = self._graph.get_operations()
            self._ops = [op.name for op in operations]
            self._tensors = [t.name for op in operations for t in op.outputs]
        pool = self._tensors if tensor else self._ops
        # Case is folded for the comparison: 'W:0' for 'w:0' is the commonest slip.
        folded: dict[str, str] = {}
        for candidate in pool or []:
            folded.setdefault(candidate.lower(), candidate)
        matches = difflib.get_close_matches(name.lower(), folded, n=_CLOSEST, cutoff=0.6)
        return [folded[match] for match in matches]


def _binding(
    name: str, graph: Any, variables: set[str], names: _Names
) -> tuple[str | None, str | None]:
    """``(spec scalar, None)`` for a name found in ``graph``, or ``(None, problem text)``."""
    match = _TENSOR_NAME.match(name)
    if match is None:
        if _op(graph, name) is not None:
            return f"op {name}", None
        what = f"no op {name!r} in the graph"
        closest = names.closest(name, tensor=False)
    else:
        op = _op(graph, match.group("op"))
        index = int(match.group("index"))
        if op is not None and index < len(op.outputs):
            kind = "variable" if name in variables else "tensor"
            return f"{kind} {name}", None
        if op is not None:
            what = f"op {op.name!r} has {len(op.outputs)} output(s), so no {name!r}"
        else:
            what = f"no tensor {name!r} in the graph"
        closest = names.closest(name, tensor=True)
    if closest:
        what += f" (closest: {', '.join(repr(c) for c in closest)})"
    return None, what


def _root_header(cls: type | str | None) -> dict[str, Any]:
    if cls is None:
        return {}
    if isinstance(cls, str):
        if not _CLASS_PATH.match(cls):
            raise SpecError(f"cls must be a class or a class path 'module:QualName', not {cls!r}")
        return {"class": cls}
    if isinstance(cls, type):
        return {"class": class_path_of(cls)}
    raise SpecError(
        f"cls must be a class or a class path 'module:QualName', not {type(cls).__name__}"
    )


def flat_to_spec_dict(
    mapping: Mapping[str, Any], graph: Any, cls: type | str | None = None
) -> dict[str, Any]:
    """The dict form of the spec for a flat ``{field: graph name}`` mapping.

    With ``cls`` (a class or ``"module:QualName"``) the root is an object of that
    class with one field per key; without, the root is a dict.

    Raises:
      SpecError: the mapping is not a ``{str: str}`` mapping.
      BindingError: names not in ``graph``, all of them, each with the closest names.
    """
    if not isinstance(mapping, Mapping):
        raise SpecError(
            f"a flat spec is a mapping {{field: graph name}}, not {type(mapping).__name__}"
        )
    header = _root_header(cls)
    malformed = [
        Problem(
            format_path((str(key),)),
            f"expected a graph name (a string), not {type(name).__name__} {name!r}",
        )
        for key, name in mapping.items()
        if not isinstance(key, str) or not isinstance(name, str) or not name
    ]
    if malformed:
        raise SpecError(problems=malformed)
    variables = _variable_names(graph)
    names = _Names(graph)
    fields: dict[str, str] = {}
    missing: list[Problem] = []
    for key, name in mapping.items():
        scalar, problem = _binding(name, graph, variables, names)
        if scalar is None:
            missing.append(Problem(format_path((key,)), str(problem)))
        else:
            fields[key] = scalar
    if missing:
        raise BindingError(problems=missing)
    if header:
        return {"nestgraph": 1, **header, "fields": fields}
    return {"nestgraph": 1, "root": {"dict": fields}}
