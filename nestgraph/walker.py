"""The walker: a pure function from a model object tree to a spec tree.

No file, YAML or session I/O happens here, and the walker never fills or
changes what it reads: a lazily rebuilt object that is not filled yet is
written from its pending part (``_objects.Unbuilt`` views) without building
it. What is walked, in the order checked:

1. leaves, through the leaf registry (``registry.handler_for_type``): plain
   values (exactly ``None``, ``bool``, ``int``, ``float``, ``str``), graph
   elements (``tf.Variable``, ``tf.SparseTensor``, ``tf.Operation``, graph
   ``tf.Tensor``), and whatever users registered with ``ng.register_leaf``;
2. containers: exactly ``list``, ``tuple``, ``dict`` with string keys, and
   namedtuples;
3. objects: a ``GraphConvertible``, an ``@register``-ed class, a dataclass, a
   generic ``Node``, and an instance of any ordinary class (one with an
   instance dict or slots, from outside the libraries in
   ``_libtypes.LIBRARY_PACKAGES``), read by ``_objects.object_fields``, which
   evaluates no property and triggers no ``__getattr__``;
4. layers (Keras, ``tf.compat.v1.layers``, RNN cells, ``tf.Module``): an
   object of their variables and sub-layers by attribute name;
5. anything else (a library object, a thread, a file, a module, a generator,
   a ``dict`` subclass) becomes a ``Skipped`` leaf that says what it was and why.

A rebuilt ``SkippedField`` or ``Placeholder`` walks back to the leaf it came
from, so walking a rebuilt model writes the same spec.

An object or container reached a second time (shared sub-network, tied
weights, cycle) becomes a ``Ref`` to the path where it was first seen, so the
walk never loops and identity survives the round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from . import registry
from ._libtypes import is_layer_type, layer_fields, library_reason, plain_object_reason
from ._objects import INTERNAL_ATTRS, Node, Placeholder, SkippedField, Unbuilt, object_fields
from .classpath import class_path_of
from .errors import WalkError
from .nodes import (
    MAX_DEPTH,
    DictNode,
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    SpecNode,
    TupleNode,
)
from .paths import Key, PathTuple, format_path

__all__ = ["walk"]

_Shape = str  # "leaf", "list", "tuple", "dict", "namedtuple", "object", "layer", "unbuilt", "other"

# Per-type dispatch, filled on first sight of each type: the shape, and for
# "other" why it is skipped. Refreshed when the registries change, so an
# @register after a walk is seen by the next walk.
_shape_cache: dict[type, tuple[_Shape, str]] = {}
_shape_cache_version = -1


def _shape_of(tp: type) -> _Shape:
    return _dispatch(tp)[0]


def _dispatch(tp: type) -> tuple[_Shape, str]:
    global _shape_cache_version
    if _shape_cache_version != registry.version():
        _shape_cache.clear()
        _shape_cache_version = registry.version()
    found = _shape_cache.get(tp)
    if found is None:
        found = _shape_cache[tp] = _compute_shape(tp)
    return found


def _compute_shape(tp: type) -> tuple[_Shape, str]:
    if registry.handler_for_type(tp) is not None:
        return "leaf", ""
    if tp is list or tp is tuple or tp is dict:
        return tp.__name__, ""
    if tp is Unbuilt:
        return "unbuilt", ""
    if issubclass(tp, tuple) and isinstance(getattr(tp, "_fields", None), tuple):
        return "namedtuple", ""
    if issubclass(tp, Node) or registry.is_trusted(tp) or dataclasses.is_dataclass(tp):
        return "object", ""
    if is_layer_type(tp):
        return "layer", ""
    # Library objects first: a user's subclass of threading.Thread is still a thread.
    reason = library_reason(tp) or plain_object_reason(tp)
    if reason is not None:
        return "other", reason
    return "object", ""


def _is_variable(value: Any) -> bool:
    handler = registry.handler_for_type(type(value))
    return handler is not None and handler.kind == "variable"


def _class_path_of_object(obj: Any) -> str:
    if isinstance(obj, Node):  # a generic object remembers the class it stands for
        return obj.nestgraph_class
    return class_path_of(type(obj))


def _marker_handler(tp: type, write: Callable[[Any], SpecNode]) -> None:
    registry.install(
        registry.LeafHandler(None, f"{tp.__module__}.{tp.__qualname__}", lambda t: t is tp, write)
    )


_marker_handler(SkippedField, lambda marker: Skipped(marker.reason))
_marker_handler(Placeholder, lambda held: Leaf(held.kind, value=held.text))


class _Walker:
    def __init__(self, on_leaf: Callable[[PathTuple, Any], None] | None = None) -> None:
        self.on_leaf = on_leaf
        self.seen: dict[Hashable, PathTuple] = {}
        # Keep every visited branch alive, so ids are not reused during the walk.
        self.alive: list[Any] = []

    def visit(self, value: Any, path: PathTuple, depth: int) -> SpecNode:
        shape, reason = _dispatch(type(value))
        if shape == "leaf":
            handler = registry.handler_for_type(type(value))
            assert handler is not None
            if self.on_leaf is not None:
                self.on_leaf(path, value)
            return handler.write(value)
        if shape == "other":
            return Skipped(reason)
        # A branch: record identity first, so a second visit (or a cycle) is a Ref.
        identity: Hashable = value.identity if shape == "unbuilt" else id(value)
        if not (shape == "tuple" and not value):
            first = self.seen.get(identity)
            if first is not None:
                return Ref(tuple(str(k) for k in first))
            self.seen[identity] = path
            self.alive.append(value)
        if depth >= MAX_DEPTH:
            raise WalkError(
                f"nesting deeper than {MAX_DEPTH} levels; nestgraph records models, "
                "not deep linked structures",
                path=format_path(path),
            )
        if shape == "unbuilt":
            return self.visit_unbuilt(value, path, depth)
        if shape == "list":
            return ListNode(self._items(value, path, depth))
        if shape == "tuple":
            return TupleNode(self._items(value, path, depth))
        if shape == "dict":
            bad = next((k for k in value if not isinstance(k, str)), None)
            if bad is not None:
                del self.seen[identity]
                return Skipped(
                    f"dict with a non-string key {bad!r} ({type(bad).__name__}); "
                    "only string keys can be recorded"
                )
            return DictNode(self._fields(value.items(), path, depth))
        if shape == "namedtuple":
            pairs = zip(type(value)._fields, value, strict=True)
            return NamedTupleNode(class_path_of(type(value)), self._fields(pairs, path, depth))
        if shape == "layer":
            return self.visit_object(value, layer_fields(value, _is_variable), path, depth)
        return self.visit_object(value, object_fields(value), path, depth)

    def visit_object(
        self, obj: Any, fields: Iterable[tuple[str, Any]], path: PathTuple, depth: int
    ) -> ObjectNode:
        return ObjectNode(_class_path_of_object(obj), self._fields(fields, path, depth))

    def visit_unbuilt(self, part: Unbuilt, path: PathTuple, depth: int) -> SpecNode:
        make: dict[str, Callable[[], SpecNode]] = {
            "list": lambda: ListNode(self._items((v for _, v in part.items()), path, depth)),
            "tuple": lambda: TupleNode(self._items((v for _, v in part.items()), path, depth)),
            "dict": lambda: DictNode(self._fields(part.items(), path, depth)),
            "namedtuple": lambda: NamedTupleNode(
                str(part.class_path), self._fields(part.items(), path, depth)
            ),
            "object": lambda: ObjectNode(
                str(part.class_path), self._fields(part.items(), path, depth)
            ),
        }
        return make[part.shape]()

    def _items(self, values: Iterable[Any], path: PathTuple, depth: int) -> list[SpecNode]:
        return [self.visit(v, (*path, i), depth + 1) for i, v in enumerate(values)]

    def _fields(
        self, pairs: Iterable[tuple[str, Any]], path: PathTuple, depth: int
    ) -> dict[str, SpecNode]:
        out: dict[str, SpecNode] = {}
        for key, value in pairs:
            child: Key = key
            out[key] = self.visit(value, (*path, child), depth + 1)
        return out


def walk(
    model: Any,
    fields: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    on_leaf: Callable[[PathTuple, Any], None] | None = None,
) -> SpecNode:
    """Walk ``model`` and return its spec tree.

    ``fields`` limits the root object to those fields, in that order; a mapping
    (such as ``model.__dict__``, the historic usage) contributes its keys.
    ``on_leaf(path, value)`` sees every leaf as it is written (the spec keeps
    names only; savers check the live elements' graphs through it).
    """
    walker = _Walker(on_leaf)
    if fields is None:
        return walker.visit(model, (), 0)
    present = dict(object_fields(model))
    if fields is getattr(model, "__dict__", None):
        # The historic ``to_graph(model.__dict__)``: every field, pending ones included,
        # though a lazily rebuilt object's dict does not hold them yet.
        names: list[Any] = list(present)
    else:
        names = list(fields.keys() if isinstance(fields, Mapping) else fields)
    pairs = []
    for name in names:
        if name in INTERNAL_ATTRS:
            continue
        if not isinstance(name, str):
            raise WalkError(f"field names must be strings, got {name!r}")
        if name not in present:
            raise WalkError(f"{type(model).__qualname__} object has no field {name!r}", path=name)
        pairs.append((name, present[name]))
    walker.seen[id(model)] = ()
    walker.alive.append(model)
    return walker.visit_object(model, pairs, (), 0)
