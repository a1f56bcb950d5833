"""What nestgraph knows how to record: trusted classes and leaf handlers.

Two registries, both extended by users the same way nestgraph extends them:

* **Trusted classes** (``@ng.register``): walked as objects and rebuilt without
  ``allow``. Held weakly, so registration never keeps a class (or its module)
  alive; ``GraphConvertible`` trusts its subclasses the same way.
* **Leaf handlers** (``ng.register_leaf``): for a type, what the walker writes
  into the spec (a kind word and graph names, or a value as text) and how the
  binder rebuilds it. The built-in leaves (plain values, ``tf.Tensor``,
  ``tf.Operation``, ``tf.Variable``, ``tf.SparseTensor``, partitioned
  variables: ``_builtinleaves``; sessions, savers, dtypes, shapes:
  ``_tfleaves``; NumPy values: ``_numpyleaves``; functions: ``_functions``)
  are registered through ``install``, the mechanism under ``register_leaf``.
  Lookup by type goes newest registration first and is cached per type; the
  cache is cleared on every registration. TensorFlow types are matched only
  when TensorFlow is already imported, so the walker never imports it.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .nodes import Leaf, LookupKind, SpecNode

__all__ = [
    "LeafHandler",
    "RebuildContext",
    "handler_for_kind",
    "handler_for_type",
    "install",
    "is_rebuilt_as_node",
    "is_trusted",
    "rebuild_as_node",
    "register",
    "register_leaf",
    "trust_subclasses",
    "version",
]

T = TypeVar("T", bound=type)

# Keyed by id and checked by identity (never ``in`` on a set of classes: that would
# run a metaclass's __eq__/__hash__); weak values, so a class is not kept alive.
_TRUSTED: weakref.WeakValueDictionary[int, type] = weakref.WeakValueDictionary()
_TRUSTED_BASES: weakref.WeakValueDictionary[int, type] = weakref.WeakValueDictionary()
_TYPE_MRO = type.__dict__["__mro__"]
_version = 0

#: Kind words a leaf handler may not take: the spec's own scalar kinds.
RESERVED_KINDS = frozenset({"str", "ref", "skipped"})
_KIND_WORD = re.compile(r"[a-z][a-z0-9_\-]*\Z")
_OP_NAME = re.compile(r"[^\s:]+\Z")
_TENSOR_NAME = re.compile(r"\S+:\d+\Z")


def version() -> int:
    """Bumped on every registration, so caches keyed on it refresh."""
    return _version


def _bump() -> None:
    global _version
    _version += 1
    _type_cache.clear()


def register(cls: T) -> T:
    """Allow ``cls`` to be walked and rebuilt without making it a ``GraphConvertible``.

    Use as a decorator. Registering the same class again is harmless. The
    registry holds the class weakly: it never outlives its module because of it.

    >>> @register
    ... class Head:
    ...     pass
    >>> is_trusted(Head)
    True
    """
    if not isinstance(cls, type):
        raise TypeError(f"register() takes a class, not {type(cls).__name__}")
    _TRUSTED[id(cls)] = cls
    _bump()
    return cls


def trust_subclasses(base: type) -> None:
    """Trust ``base`` and every subclass of it (how ``GraphConvertible`` is trusted)."""
    _TRUSTED_BASES[id(base)] = base
    _bump()


def is_trusted(cls: type) -> bool:
    """True for a class registered with ``@register`` or derived from a trusted base."""
    if _TRUSTED.get(id(cls)) is cls:
        return True
    return any(_TRUSTED_BASES.get(id(base)) is base for base in _TYPE_MRO.__get__(cls))


# --------------------------------------------------------------------------- leaf handlers


@dataclass(frozen=True)
class RebuildContext:
    """What a handler may use when rebuilding a leaf (the binder fills it in)."""

    graph: Any = None
    session: Any = None
    allow: Any = ()  # the caller's classpath.AllowPolicy
    generic: bool = False
    #: Bundle members a leaf may be rebuilt from (``arrays/<n>.npy`` -> bytes), verified.
    members: Any = None


@dataclass(frozen=True)
class LeafHandler:
    """How one type is recorded and rebuilt.

    ``parts`` are the graph names the leaf holds, each ``(part name, lookup
    kind)``; one unnamed part (``""``) means the leaf's path itself names it.
    A leaf without parts is a value leaf: its text is ``encode(obj)`` and it is
    rebuilt by ``decode(text)``, with no graph involved.
    """

    kind: str | None
    label: str
    matches: Callable[[type], bool]
    write: Callable[[Any], SpecNode]
    parts: tuple[tuple[str, str], ...] = ()
    rebuild: Callable[[Leaf, tuple[Any, ...], RebuildContext], Any] | None = None
    #: Checks the text after the kind word; returns a problem message or None.
    check_text: Callable[[str], str | None] | None = None
    #: Checks the graph elements found for the parts; returns a problem message or None.
    check_elements: Callable[[tuple[Any, ...]], str | None] | None = None
    exact_type: type | None = field(default=None, compare=False)
    #: Families of ``ng.scan``'s op list that this leaf's own ops are expected to
    #: reach (a Saver's save and restore ops write and read checkpoints: that is
    #: what they are for, and they run only when the model's code calls them).
    expected_families: frozenset[str] = frozenset()

    def parse(self, text: str) -> Leaf:
        """The leaf for ``text`` (what follows the kind word); ``ValueError`` if malformed."""
        assert self.kind is not None
        if self.check_text is not None:
            problem = self.check_text(text)
            if problem is not None:
                raise ValueError(problem)
        if not self.parts:
            return Leaf(self.kind, value=text)
        # Text after the graph names (a Saver's flags) is the leaf's value.
        tokens = text.split(" ", len(self.parts))
        rest = tokens[len(self.parts)] if len(tokens) > len(self.parts) else None
        return Leaf(self.kind, tuple(tokens[: len(self.parts)]), rest)


_handlers: list[LeafHandler] = []
_by_kind: dict[str, LeafHandler] = {}
_type_cache: dict[type, LeafHandler | None] = {}


def handler_for_type(tp: type) -> LeafHandler | None:
    """The newest handler matching ``tp`` (cached), or None."""
    try:
        return _type_cache[tp]
    except KeyError:
        pass
    found = next((h for h in reversed(_handlers) if h.matches(tp)), None)
    _type_cache[tp] = found
    return found


def handler_for_kind(kind: str) -> LeafHandler | None:
    """The handler that reads and rebuilds leaves of ``kind``, or None."""
    return _by_kind.get(kind)


def _install(handler: LeafHandler, *, override: bool) -> LeafHandler:
    clash = [
        h
        for h in _handlers
        if (handler.exact_type is not None and h.exact_type is handler.exact_type)
        or (handler.kind is not None and h.kind == handler.kind)
    ]
    if clash and not override:
        what = clash[0]
        raise ValueError(
            f"a leaf handler for {what.label} (kind {what.kind!r}) is already registered; "
            "pass override=True to replace it"
        )
    for old in clash:
        _handlers.remove(old)
        if old.kind is not None:
            _by_kind.pop(old.kind, None)
    _handlers.append(handler)
    if handler.kind is not None:
        _by_kind[handler.kind] = handler
    _bump()
    return handler


def install(handler: LeafHandler, *, override: bool = False) -> LeafHandler:
    """Register a ``LeafHandler`` built by hand (one whose ``rebuild`` needs the context)."""
    return _install(handler, override=override)


# Module prefixes whose classes are rebuilt as generic ``Node`` objects whatever the
# policy says: library objects (layers) that ``cls.__new__`` plus fields cannot make usable.
_NODE_PREFIXES: set[str] = set()


def rebuild_as_node(module_prefix: str) -> None:
    """Rebuild every class under ``module_prefix`` (``"tf_keras."``) as an ``ng.Node``."""
    _NODE_PREFIXES.add(module_prefix)
    _bump()


def is_rebuilt_as_node(class_path: str) -> bool:
    """True for a class path that ``rebuild_as_node`` covers."""
    module = class_path.split(":", 1)[0] + "."
    return any(module.startswith(prefix) for prefix in _NODE_PREFIXES)


def _part_kinds(parts: Sequence[str] | Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if parts is None:
        return (("", LookupKind.TENSOR),)
    pairs = (
        list(parts.items())
        if isinstance(parts, Mapping)
        else [(p, LookupKind.TENSOR) for p in parts]
    )
    for name, kind in pairs:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"part names must be identifiers, not {name!r}")
        if kind not in LookupKind.ALL:
            raise ValueError(f"part {name!r}: kind must be one of {', '.join(LookupKind.ALL)}")
    if len({n for n, _ in pairs}) != len(pairs) or not pairs:
        raise ValueError("parts must be distinct, and there must be at least one")
    return tuple(pairs)


def names_problem(kind: str, parts: tuple[tuple[str, str], ...], text: str) -> str | None:
    names = text.split(" ")
    if len(parts) > 1:
        kinds = {k for _, k in parts}
        what = f"{next(iter(kinds))} names" if len(kinds) == 1 else "names"
        count = {3: "three", 2: "two"}.get(len(parts), str(len(parts)))
        ok = len(names) == len(parts) and all(
            (_OP_NAME if k == LookupKind.OP else _TENSOR_NAME).match(n)
            for n, (_, k) in zip(names, parts, strict=False)
        )
        if not ok:
            return f"{kind!r} takes {count} {what}: {', '.join(p for p, _ in parts)}"
        return None
    lookup = parts[0][1]
    if lookup == LookupKind.PARTITIONED:
        if _OP_NAME.match(text):
            return None
        return f"bad {kind} name {text!r}: a partitioned variable is named without ':N'"
    if lookup == LookupKind.OP:
        if _OP_NAME.match(text):
            return None
        hint = "an op name has no ':N'"
        if _TENSOR_NAME.match(text):
            hint += f" (did you mean 'op {text.rsplit(':', 1)[0]}' or 'tensor {text}'?)"
        return f"bad {kind} name {text!r}: {hint}"
    if _TENSOR_NAME.match(text):
        return None
    return f"bad {kind} name {text!r}: a {kind} name ends in ':N'"


def _subclass_of(tp: type) -> Callable[[type], bool]:
    return lambda candidate: issubclass(candidate, tp)


def register_leaf(
    tp: type,
    *,
    kind: str,
    parts: Sequence[str] | Mapping[str, str] | None = None,
    write: Callable[[Any], Sequence[Any]] | None = None,
    rebuild: Callable[..., Any] | None = None,
    encode: Callable[[Any], str] | None = None,
    decode: Callable[[str], Any] | None = None,
    override: bool = False,
) -> None:
    """Teach nestgraph to record values of type ``tp`` (and its subclasses) as leaves.

    Two forms:

    * **Graph elements**: ``parts`` names the graph elements the value is made
      of (a sequence of part names, all tensors, or ``{part: "tensor" | "op" |
      "variable"}``); ``write(value)`` returns those elements in that order
      (objects with a ``.name``, or the names themselves); ``rebuild(*elements)``
      makes the value again from the elements found in the graph. The spec
      holds ``KIND NAME NAME ...``; each name is checked, rescoped and pruned
      like any binding.
    * **A value**: ``encode(value) -> str`` and ``decode(text) -> value``; the
      spec holds ``KIND TEXT``.

    The newest registration for a type wins; registering a type or a kind
    word twice raises ``ValueError`` unless ``override=True``.

    Example (a ``tf.RaggedTensor`` as its values and row splits)::

        ng.register_leaf(
            tf.RaggedTensor, kind="ragged", parts=["values", "row_splits"],
            write=lambda rt: (rt.values, rt.row_splits),
            rebuild=lambda values, row_splits: tf.RaggedTensor.from_row_splits(
                values, row_splits, validate=False),
        )
    """
    if not isinstance(tp, type):
        raise TypeError(f"register_leaf() takes a type, not {type(tp).__name__}")
    if not isinstance(kind, str) or not _KIND_WORD.match(kind):
        raise ValueError(f"kind must be a lower-case word such as 'ragged', not {kind!r}")
    if kind in RESERVED_KINDS:
        raise ValueError(f"kind {kind!r} is reserved by the spec format")
    label = f"{tp.__module__}.{tp.__qualname__}"
    if encode is not None or decode is not None:
        if encode is None or decode is None or write is not None or rebuild is not None:
            raise TypeError(
                "a value leaf takes encode= and decode=, and neither write= nor rebuild="
            )
        if parts is not None:
            raise TypeError("a value leaf has no parts")
        value_encode, value_decode = encode, decode

        def write_value(obj: Any) -> SpecNode:
            text = value_encode(obj)
            if not isinstance(text, str):
                raise TypeError(f"encode() for kind {kind!r} must return a str")
            return Leaf(kind, value=text)

        _install(
            LeafHandler(
                kind,
                label,
                _subclass_of(tp),
                write_value,
                rebuild=lambda leaf, elements, context: value_decode(leaf.text),
                exact_type=tp,
            ),
            override=override,
        )
        return
    if write is None or rebuild is None:
        raise TypeError("register_leaf needs write= and rebuild= (or encode= and decode=)")
    part_kinds = _part_kinds(parts)
    graph_write, graph_rebuild = write, rebuild

    def write_parts(obj: Any) -> SpecNode:
        elements = tuple(graph_write(obj))
        if len(elements) != len(part_kinds):
            raise TypeError(
                f"write() for kind {kind!r} returned {len(elements)} elements, "
                f"expected {len(part_kinds)}"
            )
        names = tuple(e if isinstance(e, str) else str(e.name) for e in elements)
        return Leaf(kind, names)

    _install(
        LeafHandler(
            kind,
            label,
            _subclass_of(tp),
            write_parts,
            parts=part_kinds,
            rebuild=lambda leaf, elements, context: graph_rebuild(*elements),
            check_text=lambda text: names_problem(kind, part_kinds, text),
            exact_type=tp,
        ),
        override=override,
    )
