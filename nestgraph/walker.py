"""The walker: a pure function from a model object tree to a spec tree.

No file, YAML or session I/O happens here. What is walked, in the order checked:

1. plain values (exactly ``None``, ``bool``, ``int``, ``float``, ``str``);
2. graph elements: ``tf.Variable``, ``tf.SparseTensor``, ``tf.Operation``,
   graph ``tf.Tensor`` (only if TensorFlow is already imported: an object of a
   TensorFlow type cannot exist otherwise, so the walker never imports it);
3. containers: exactly ``list``, ``tuple``, ``dict`` with string keys, and
   namedtuples;
4. objects whose class is a ``GraphConvertible``, is ``@register``-ed, is a
   dataclass, or is a generic ``Node``;
5. anything else becomes a ``Skipped`` leaf that says what it was and why.

An object or container reached a second time (shared sub-network, tied
weights, cycle) becomes a ``Ref`` to the path where it was first seen, so the
walk never loops and identity survives the round trip.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from . import classpath
from .errors import NestgraphError
from .nodes import (
    Binding,
    DictNode,
    ListNode,
    NamedTupleNode,
    Node,
    ObjectNode,
    Ref,
    Skipped,
    Sparse,
    TupleNode,
    Value,
)
from .paths import Key, PathTuple, format_path

__all__ = ["MAX_DEPTH", "object_fields", "slot_names", "walk"]

#: Deepest nesting of objects and containers the walker (and the spec reader) accepts.
MAX_DEPTH = 100

_PLAIN = (type(None), bool, int, float, str)
# Attributes nestgraph itself may keep on a rebuilt object; never walked.
INTERNAL_ATTRS = frozenset({"_nestgraph_pending", "_nestgraph_class"})

# Per-type dispatch, filled on first sight of each type. Keyed by the registry
# version so that an @register after a walk is seen by the next walk.
_kind_cache: dict[type, str] = {}
_kind_cache_version = -1


def _tf_kind(tp: type) -> str | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    if issubclass(tp, tf.Variable):
        return "variable"
    if issubclass(tp, tf.SparseTensor):
        return "sparse"
    if issubclass(tp, tf.Operation):
        return "op"
    if issubclass(tp, tf.Tensor):
        return "tensor"
    return None


def _kind_of_type(tp: type) -> str:
    global _kind_cache_version
    if _kind_cache_version != classpath.registry_version:
        _kind_cache.clear()
        _kind_cache_version = classpath.registry_version
    kind = _kind_cache.get(tp)
    if kind is None:
        kind = _compute_kind(tp)
        _kind_cache[tp] = kind
    return kind


def _compute_kind(tp: type) -> str:
    if tp in _PLAIN:
        return "value"
    tf_kind = _tf_kind(tp)
    if tf_kind is not None:
        return tf_kind
    if tp is list:
        return "list"
    if tp is tuple:
        return "tuple"
    if tp is dict:
        return "dict"
    if issubclass(tp, tuple) and isinstance(getattr(tp, "_fields", None), tuple):
        return "namedtuple"
    if _is_walkable_class(tp):
        return "object"
    return "other"


def _is_walkable_class(tp: type) -> bool:
    from .binding import GraphConvertible, Node

    return (
        issubclass(tp, (GraphConvertible, Node))
        or classpath.is_registered(tp)
        or dataclasses.is_dataclass(tp)
    )


_slot_cache: dict[type, tuple[str, ...]] = {}


def slot_names(cls: type) -> tuple[str, ...]:
    """The slots of ``cls`` and its bases, in definition order (no ``__dict__``/``__weakref__``)."""
    found = _slot_cache.get(cls)
    if found is None:
        names: dict[str, None] = {}
        for klass in cls.__mro__:
            slots = klass.__dict__.get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot not in ("__dict__", "__weakref__"):
                    names.setdefault(slot)
        found = _slot_cache[cls] = tuple(names)
    return found


def object_fields(obj: Any) -> list[tuple[str, Any]]:
    """An object's fields in definition order: its ``__dict__``, then its slots."""
    from .binding import materialize

    materialize(obj)
    items: list[tuple[str, Any]] = []
    instance_dict = getattr(obj, "__dict__", None)
    if isinstance(instance_dict, dict):
        items.extend((k, v) for k, v in instance_dict.items() if k not in INTERNAL_ATTRS)
    seen = {k for k, _ in items}
    for slot in slot_names(type(obj)):
        if slot in seen:
            continue
        try:
            items.append((slot, getattr(obj, slot)))
        except AttributeError:
            continue  # an unset slot holds nothing to record
    return items


def _describe(value: Any) -> str:
    tp = type(value)
    return f"{tp.__module__}:{tp.__qualname__}"


class _Walker:
    def __init__(self) -> None:
        self.seen: dict[int, PathTuple] = {}
        # Keep every visited branch alive, so ids are not reused during the walk.
        self.alive: list[Any] = []

    def visit(self, value: Any, path: PathTuple, depth: int) -> Node:
        kind = _kind_of_type(type(value))
        if kind == "value":
            return Value(value)
        if kind == "tensor":
            graph = _graph_of(value)
            if graph is None:
                return Skipped(f"eager tensor {_describe(value)} has no graph name")
            return Binding("tensor", value.name)
        if kind == "op":
            return Binding("op", value.name)
        if kind == "variable":
            return Binding("variable", value.name)
        if kind == "sparse":
            return Sparse(value.indices.name, value.values.name, value.dense_shape.name)
        if kind == "other":
            return Skipped(
                f"{_describe(value)} is not a graph element, plain value, list, tuple, "
                "dict or walkable class (subclass ng.GraphConvertible or use @ng.register)"
            )

        # A branch: record identity first, so a second visit (or a cycle) is a Ref.
        if not (kind == "tuple" and not value):
            first = self.seen.get(id(value))
            if first is not None:
                return Ref(tuple(str(k) for k in first))
            self.seen[id(value)] = path
            self.alive.append(value)
        if depth >= MAX_DEPTH:
            raise NestgraphError(
                f"nesting deeper than {MAX_DEPTH} levels; nestgraph records models, "
                "not deep linked structures",
                path=format_path(path),
            )
        if kind == "list":
            return ListNode(self._items(value, path, depth))
        if kind == "tuple":
            return TupleNode(self._items(value, path, depth))
        if kind == "dict":
            bad = next((k for k in value if not isinstance(k, str)), None)
            if bad is not None:
                del self.seen[id(value)]
                return Skipped(
                    f"dict with a non-string key {bad!r} ({type(bad).__name__}); "
                    "only string keys can be recorded"
                )
            return DictNode(self._fields(value.items(), path, depth))
        if kind == "namedtuple":
            pairs = zip(type(value)._fields, value, strict=True)
            return NamedTupleNode(
                classpath.class_path_of(type(value)), self._fields(pairs, path, depth)
            )
        return self.visit_object(value, object_fields(value), path, depth)

    def visit_object(
        self, obj: Any, fields: Iterable[tuple[str, Any]], path: PathTuple, depth: int
    ) -> ObjectNode:
        return ObjectNode(_class_path_of_object(obj), self._fields(fields, path, depth))

    def _items(self, values: Iterable[Any], path: PathTuple, depth: int) -> list[Node]:
        return [self.visit(v, (*path, i), depth + 1) for i, v in enumerate(values)]

    def _fields(
        self, pairs: Iterable[tuple[str, Any]], path: PathTuple, depth: int
    ) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for key, value in pairs:
            child: Key = key
            out[key] = self.visit(value, (*path, child), depth + 1)
        return out


def _graph_of(tensor: Any) -> Any:
    try:
        return tensor.graph
    except AttributeError:  # EagerTensor: "Tensor.graph is undefined when eager execution..."
        return None


def _class_path_of_object(obj: Any) -> str:
    from .binding import Node

    if isinstance(obj, Node):  # a generic object remembers the class it stands for
        return obj._nestgraph_class
    return classpath.class_path_of(type(obj))


def walk(model: Any, fields: Iterable[str] | Mapping[str, Any] | None = None) -> Node:
    """Walk ``model`` and return its spec tree.

    ``fields`` limits the root object to those fields, in that order; a mapping
    (such as ``model.__dict__``, the historic usage) contributes its keys.
    """
    walker = _Walker()
    if fields is None:
        return walker.visit(model, (), 0)
    from .binding import materialize

    # Old usage passes the live model.__dict__: fill a lazily rebuilt object first,
    # so the mapping holds the fields and not nestgraph's pending marker.
    materialize(model)
    names = list(fields.keys() if isinstance(fields, Mapping) else fields)
    pairs = []
    for name in names:
        if name in INTERNAL_ATTRS:
            continue
        if not isinstance(name, str):
            raise NestgraphError(f"field names must be strings, got {name!r}")
        try:
            pairs.append((name, getattr(model, name)))
        except AttributeError:
            raise NestgraphError(
                f"{type(model).__qualname__} object has no field {name!r}", path=name
            ) from None
    walker.seen[id(model)] = ()
    walker.alive.append(model)
    return walker.visit_object(model, pairs, (), 0)
