"""Building the objects of one ``from_graph`` call, lazily where the class allows it.

Objects are created with ``cls.__new__`` (``__init__`` is never called). A
``GraphConvertible`` or generic ``Node`` gets an ``_objects.Pending`` and its
fields on first attribute access; other classes are filled at once. Lists,
tuples and dicts are built when their owner is filled. A pending object can be
previewed (``Unbuilt`` views) without building anything, for the walker.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from . import registry
from ._objects import (
    PENDING_ATTR,
    LazyFields,
    Node,
    Pending,
    SkippedField,
    Unbuilt,
    slot_names,
)
from .errors import NestgraphError, SpecError
from .nodes import (
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    SpecNode,
    TupleNode,
    Value,
    children,
)
from .paths import PathTuple, format_path
from .spec import Spec

__all__ = ["Builder"]

_MAX_GENERIC_TUPLES = 1024


class Builder:
    """Creates the objects of one from_graph call; one object per spec path."""

    def __init__(
        self,
        spec: Spec,
        elements: dict[PathTuple, tuple[Any, ...]],
        classes: dict[str, type | None],
        context: registry.RebuildContext,
    ) -> None:
        self.spec = spec
        self.elements = elements
        self.classes = classes
        self.context = context
        self.objects: dict[PathTuple, Any] = {}
        self.in_progress: set[PathTuple] = set()
        self.lock = threading.RLock()

    def leaf(self, path: PathTuple, node: SpecNode) -> tuple[bool, Any]:
        """``(True, value)`` for a leaf node, ``(False, None)`` for a branch or ref."""
        if isinstance(node, Value):
            return True, node.value
        if isinstance(node, Skipped):
            return True, SkippedField(node.reason)
        if isinstance(node, Leaf):
            handler = registry.handler_for_kind(node.kind)
            assert handler is not None and handler.rebuild is not None
            return True, handler.rebuild(node, self.elements.get(path, ()), self.context)
        return False, None

    def value(self, path: PathTuple, node: SpecNode) -> Any:
        is_leaf, found = self.leaf(path, node)
        if is_leaf:
            return found
        if isinstance(node, Ref):
            path, node = self.spec.resolve(node.target)
        with self.lock:
            if path in self.objects:
                return self.objects[path]
            return self.branch(path, node)

    def preview(self, path: PathTuple, node: SpecNode) -> Any:
        """What ``value`` would give, without building a branch that is not built yet."""
        is_leaf, found = self.leaf(path, node)
        if is_leaf:
            return found
        if isinstance(node, Ref):
            path, node = self.spec.resolve(node.target)
        if path in self.objects:
            return self.objects[path]
        kind = "object" if isinstance(node, ObjectNode) else type(node).__name__[:-4].lower()
        class_path = getattr(node, "class_path", None)
        kids = list(children(node))
        return Unbuilt(
            (id(self), path),
            kind,
            class_path,
            lambda: [(k, self.preview((*path, k), v)) for k, v in kids],
        )

    def branch(self, path: PathTuple, node: SpecNode) -> Any:
        if isinstance(node, (TupleNode, NamedTupleNode)):
            if path in self.in_progress:
                raise SpecError(
                    "a tuple cannot contain itself (refs form a cycle through tuples only)",
                    path=format_path(path),
                )
            self.in_progress.add(path)
            try:
                built = self._tuple(path, node)
            finally:
                self.in_progress.discard(path)
            self.objects[path] = built
            return built
        if isinstance(node, ObjectNode):
            shell = self.shell(path, node)
            self.objects[path] = shell
            self.attach(shell, path, node.fields)
            return shell
        container: Any = [] if isinstance(node, ListNode) else {}
        self.objects[path] = container
        kids = [(k, self.value((*path, k), v)) for k, v in children(node)]
        if isinstance(container, list):
            container.extend(v for _, v in kids)
        else:
            container.update(kids)
        return container

    def _tuple(self, path: PathTuple, node: TupleNode | NamedTupleNode) -> Any:
        if isinstance(node, TupleNode):
            return tuple(self.value((*path, i), v) for i, v in enumerate(node.items))
        values = {k: self.value((*path, k), v) for k, v in node.fields.items()}
        cls = self.classes.get(node.class_path)
        if cls is None:
            cls = _generic_namedtuple(node.class_path, tuple(values))
            if cls is None:
                return Node(node.class_path, **values)
        try:
            return cls.__new__(cls, **values)  # type: ignore[call-overload]
        except TypeError as exc:
            raise SpecError(
                f"cannot rebuild namedtuple {node.class_path}: {exc}", path=format_path(path)
            ) from None

    def shell(self, path: PathTuple, node: ObjectNode) -> Any:
        cls = self.classes.get(node.class_path)
        if cls is None:
            return Node.standing_for(node.class_path)
        try:
            return cls.__new__(cls)  # type: ignore[call-overload]
        except Exception as exc:
            raise NestgraphError(
                f"cannot create {node.class_path} with __new__ ({exc})", path=format_path(path)
            ) from None

    def attach(self, obj: Any, path: PathTuple, fields: dict[str, SpecNode]) -> None:
        """Set ``fields`` on ``obj`` now, or on first attribute access when ``obj`` is lazy."""
        if not _can_be_lazy(obj):
            self.set_fields(obj, path, fields)
            return
        cls = type(obj)
        shadowed = {k: v for k, v in fields.items() if _class_has(cls, k)}
        if shadowed:  # a class attribute of that name would answer before __getattr__
            self.set_fields(obj, path, shadowed)
        rest = {k: v for k, v in fields.items() if k not in shadowed}
        if rest:
            obj.__dict__[PENDING_ATTR] = Pending(
                lambda target: self.set_fields(target, path, rest),
                lambda: [(k, self.preview((*path, k), v)) for k, v in rest.items()],
                fields,
            )

    def set_fields(self, obj: Any, path: PathTuple, fields: dict[str, SpecNode]) -> None:
        slots = slot_names(type(obj))
        for key, node in fields.items():
            value = self.value((*path, key), node)
            # Write where the walker read from: the slot, or the instance dict (past any
            # property or frozen-dataclass __setattr__ of the same name).
            if key in slots:
                object.__setattr__(obj, key, value)
            else:
                obj.__dict__[key] = value


def _can_be_lazy(obj: Any) -> bool:
    return (
        isinstance(obj, LazyFields)
        and type(obj).__getattr__ is LazyFields.__getattr__
        and isinstance(getattr(obj, "__dict__", None), dict)
    )


def _class_has(cls: type, name: str) -> bool:
    return any(name in klass.__dict__ for klass in cls.__mro__)


# Stand-in namedtuple classes, one per (class path, fields); bounded, oldest dropped
# first, because a spec from outside chooses the keys.
_generic_tuples: collections.OrderedDict[tuple[str, tuple[str, ...]], type] = (
    collections.OrderedDict()
)


def _generic_namedtuple(class_path: str, fields: tuple[str, ...]) -> type | None:
    """A stand-in namedtuple class remembering ``class_path`` (None if fields can't be names)."""
    key = (class_path, fields)
    found = _generic_tuples.get(key)
    if found is not None:
        _generic_tuples.move_to_end(key)
        return found
    name = class_path.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    try:
        cls = collections.namedtuple(name, fields, module=__name__)  # type: ignore[misc]
    except ValueError:
        return None
    cls.nestgraph_class = class_path  # type: ignore[attr-defined]  # as ng.Node names it
    _generic_tuples[key] = cls
    while len(_generic_tuples) > _MAX_GENERIC_TUPLES:
        _generic_tuples.popitem(last=False)
    return cls
