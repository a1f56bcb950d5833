"""Lazy objects: fields that are set on first access, and the generic ``Node``.

This module knows nothing of specs or graphs. A rebuilt object holds a
``Pending`` under ``_nestgraph_pending`` in its instance dict until one of its
fields is first looked for; the ``Pending`` was made by whoever rebuilt it (the
binder) with two callbacks: one that sets the fields, and one that shows them
without building anything (for the walker, which never fills what it reads).

Field readers (:func:`object_fields`, :func:`slot_names`) read an object's
fields the way the walker records them, without running user code: the
instance dict and slot descriptors are read directly, so no property,
``__getattr__`` or lazy fill runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ClassNotAllowedError

__all__ = [
    "CLASS_ATTR",
    "INTERNAL_ATTRS",
    "PENDING_ATTR",
    "LazyFields",
    "Node",
    "Pending",
    "Placeholder",
    "SkippedField",
    "Unbuilt",
    "materialize",
    "object_fields",
    "pending_of",
    "slot_names",
]

PENDING_ATTR = "_nestgraph_pending"
CLASS_ATTR = "_nestgraph_class"
#: Attributes nestgraph itself keeps on a rebuilt object; never walked, never a field.
INTERNAL_ATTRS = frozenset({PENDING_ATTR, CLASS_ATTR})


@dataclass(frozen=True)
class Unbuilt:
    """A part of a lazily rebuilt object that is not built yet, as a reader sees it.

    ``shape`` is ``"object"``, ``"namedtuple"``, ``"list"``, ``"tuple"`` or
    ``"dict"``; ``identity`` is the same for every view of the same part, so a
    reader can tell a shared part from two equal ones; ``items()`` gives its
    fields or items as ``(key, value)`` pairs, each value again a plain value,
    an already built object or an ``Unbuilt``.
    """

    identity: Hashable
    shape: str
    class_path: str | None
    items: Callable[[], Iterable[tuple[Any, Any]]]


class Pending:
    """Fields still to be set on a lazily rebuilt object."""

    __slots__ = ("_fill", "_lock", "_preview", "done", "order")

    def __init__(
        self,
        fill: Callable[[Any], None],
        preview: Callable[[], Iterable[tuple[str, Any]]],
        order: Iterable[str],
    ) -> None:
        self._fill = fill
        self._preview = preview
        self._lock = threading.Lock()
        self.done = False
        #: Every field name of the object in definition order (set and pending ones).
        self.order = tuple(order)

    def fill(self, obj: Any) -> None:
        """Set the pending fields on ``obj`` (once, whichever thread asks first)."""
        with self._lock:
            if self.done:
                return
            self._fill(obj)
            self.done = True
            _instance_dict(obj).pop(PENDING_ATTR, None)

    def preview(self) -> Iterable[tuple[str, Any]]:
        """The pending fields as ``(name, value or Unbuilt)``, building nothing."""
        return self._preview()


def _instance_dict(obj: Any) -> dict[str, Any]:
    try:
        found = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return found if isinstance(found, dict) else {}


def pending_of(obj: Any) -> Pending | None:
    """The ``Pending`` of a lazily rebuilt object that is not filled yet, else None."""
    pending = _instance_dict(obj).get(PENDING_ATTR)
    return pending if isinstance(pending, Pending) and not pending.done else None


def materialize(obj: Any) -> Any:
    """Set every pending field of a lazily rebuilt object now; return ``obj``."""
    pending = pending_of(obj)
    if pending is not None:
        pending.fill(obj)
    return obj


class LazyFields:
    """Fills a rebuilt object's fields the first time one is looked for."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        pending = pending_of(self)
        if pending is not None:
            pending.fill(self)
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> Any:
        # copy and pickle read __dict__ directly: fill it first.
        materialize(self)
        return {k: v for k, v in self.__dict__.items() if k not in INTERNAL_ATTRS}


class Node(LazyFields):
    """A generic object standing in for a class that could not be used.

    Holds the fields as attributes and remembers the class path, so walking it
    again writes the same spec.

    >>> head = Node("mypkg.heads:Head", units=10)
    >>> head.nestgraph_class, head.units
    ('mypkg.heads:Head', 10)
    """

    def __init__(self, class_path: str, **fields: Any) -> None:
        self.__dict__[CLASS_ATTR] = class_path
        self.__dict__.update(fields)

    @classmethod
    def standing_for(cls, class_path: str) -> Node:
        """An empty generic object for ``class_path``, without calling ``__init__``."""
        node = cls.__new__(cls)
        node.__dict__[CLASS_ATTR] = class_path
        return node

    @property
    def nestgraph_class(self) -> str:
        """The class path this object stands for (``module:QualName``)."""
        return str(self.__dict__[CLASS_ATTR])

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={type(v).__name__}" for k, v in object_fields(self))
        return f"Node({self.nestgraph_class!r}, {shown})"


_slot_cache: dict[type, tuple[tuple[str, Any], ...]] = {}


def _slots(cls: type) -> tuple[tuple[str, Any], ...]:
    """``(slot name, descriptor)`` of ``cls`` and its bases, in definition order."""
    found = _slot_cache.get(cls)
    if found is None:
        names: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            slots = klass.__dict__.get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot not in ("__dict__", "__weakref__") and slot not in names:
                    names[slot] = klass.__dict__.get(slot)
        found = _slot_cache[cls] = tuple(names.items())
    return found


def slot_names(cls: type) -> tuple[str, ...]:
    """The slots of ``cls`` and its bases, base classes first (no ``__dict__``/``__weakref__``)."""
    return tuple(name for name, _ in _slots(cls))


def object_fields(obj: Any) -> list[tuple[str, Any]]:
    """An object's fields in definition order, read without running any user code.

    The instance dict, then the slots that are set. A lazily rebuilt object that
    is not filled yet shows its pending fields too (as values or ``Unbuilt``
    views), in their definition order, and stays unfilled.
    """
    values: dict[str, Any] = {
        k: v for k, v in _instance_dict(obj).items() if k not in INTERNAL_ATTRS
    }
    for name, descriptor in _slots(type(obj)):
        if name in values or descriptor is None or not hasattr(descriptor, "__get__"):
            continue
        try:
            values[name] = descriptor.__get__(obj, type(obj))
        except AttributeError:
            continue  # an unset slot holds nothing to record
    pending = pending_of(obj)
    if pending is None:
        return list(values.items())
    values.update(pending.preview())
    ordered = [(k, values.pop(k)) for k in pending.order if k in values]
    return ordered + list(values.items())


class SkippedField:
    """What a field recorded as ``skipped REASON`` holds after a rebuild.

    Falsy, and its ``repr`` says what it stood for, so the loss is visible; walking
    it writes ``skipped REASON`` again (not ``null``), so a re-saved spec is the same.

    >>> field = SkippedField("numpy:ndarray float32 [784] is too large to write inline")
    >>> bool(field), field
    (False, <skipped: numpy:ndarray float32 [784] is too large to write inline>)
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<skipped: {self.reason}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is SkippedField and other.reason == self.reason

    def __hash__(self) -> int:
        return hash((SkippedField, self.reason))


class Placeholder:
    """A recorded leaf that could not be given back (a function not allowed, no session).

    Holds the leaf's kind word and text, so walking it writes the same leaf again,
    and ``reason``, which says why it is not the real thing and how to get that.
    Falsy; calling it raises ``ClassNotAllowedError`` with that reason.

    >>> relu = Placeholder("function", "tensorflow.python.ops.gen_nn_ops:relu", "not allowed")
    >>> bool(relu), relu
    (False, <function tensorflow.python.ops.gen_nn_ops:relu (not allowed)>)
    """

    __slots__ = ("kind", "reason", "text")

    def __init__(self, kind: str, text: str, reason: str) -> None:
        self.kind = kind
        self.text = text
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<{self.kind} {self.text} ({self.reason})>"

    def __eq__(self, other: object) -> bool:
        return type(other) is Placeholder and (other.kind, other.text) == (self.kind, self.text)

    def __hash__(self) -> int:
        return hash((Placeholder, self.kind, self.text))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ClassNotAllowedError(f"{self.kind} {self.text}: {self.reason}", class_path=self.text)
