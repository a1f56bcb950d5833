"""The spec tree: plain data nodes that mirror the model's nesting.

Leaves: ``Value`` (None, bool, int, float, str), ``Binding`` (one graph element
by name), ``Sparse`` (a SparseTensor's three tensors), ``Ref`` (the object at
another path: shared objects and cycles), ``Skipped`` (a field nestgraph cannot
record, with the reason). Branches: ``ObjectNode``, ``NamedTupleNode``,
``ListNode``, ``TupleNode``, ``DictNode``.

``iter_nodes`` is the one traversal every consumer (flatten, bindings, rescope,
closure computation) is built on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import ROOT_LABEL
from .paths import Key, PathTuple, format_path

__all__ = [
    "BINDING_KINDS",
    "Binding",
    "DictNode",
    "ListNode",
    "NamedTupleNode",
    "Node",
    "ObjectNode",
    "Ref",
    "Skipped",
    "Sparse",
    "TupleNode",
    "Value",
    "children",
    "describe",
    "iter_nodes",
]

#: Kinds a ``Binding`` can have. A SparseTensor is its own node (``Sparse``).
BINDING_KINDS = ("tensor", "op", "variable")
SPARSE_PARTS = ("indices", "values", "dense_shape")

Scalar = None | bool | int | float | str


@dataclass(frozen=True, slots=True)
class Value:
    value: Scalar


@dataclass(frozen=True, slots=True)
class Binding:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Sparse:
    indices: str
    values: str
    dense_shape: str

    def names(self) -> tuple[str, str, str]:
        return (self.indices, self.values, self.dense_shape)


@dataclass(frozen=True, slots=True)
class Ref:
    #: Keys as written in the spec (strings); resolved against the tree on use.
    target: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


@dataclass(slots=True, eq=True)
class ObjectNode:
    class_path: str
    fields: dict[str, Node] = field(default_factory=dict)


@dataclass(slots=True, eq=True)
class NamedTupleNode:
    class_path: str
    fields: dict[str, Node] = field(default_factory=dict)


@dataclass(slots=True, eq=True)
class ListNode:
    items: list[Node] = field(default_factory=list)


@dataclass(slots=True, eq=True)
class TupleNode:
    items: list[Node] = field(default_factory=list)


@dataclass(slots=True, eq=True)
class DictNode:
    items: dict[str, Node] = field(default_factory=dict)


Leaf = Value | Binding | Sparse | Ref | Skipped
Branch = ObjectNode | NamedTupleNode | ListNode | TupleNode | DictNode
Node = Leaf | Branch


def children(node: Node) -> Iterator[tuple[Key, Node]]:
    """The direct children of a branch, in order (nothing for a leaf)."""
    if isinstance(node, (ObjectNode, NamedTupleNode)):
        yield from node.fields.items()
    elif isinstance(node, DictNode):
        yield from node.items.items()
    elif isinstance(node, (ListNode, TupleNode)):
        yield from enumerate(node.items)


def iter_nodes(node: Node, path: PathTuple = ()) -> Iterator[tuple[PathTuple, Node]]:
    """Every node below ``node`` (itself first), depth first, in document order.

    Refs are yielded as they are, never followed: each node appears once.
    Iterative, so a deep tree cannot exhaust the Python stack.
    """
    stack: list[tuple[PathTuple, Node]] = [(path, node)]
    while stack:
        here, current = stack.pop()
        yield here, current
        kids = list(children(current))
        for key, child in reversed(kids):
            stack.append(((*here, key), child))


def describe(node: Node) -> tuple[str, str]:
    """``(kind, detail)`` of one spec node, as ``show``, ``diff`` and ``summary`` print it.

    >>> describe(Binding("tensor", "x:0"))
    ('tensor', 'x:0')
    """
    if isinstance(node, Binding):
        return node.kind, node.name
    if isinstance(node, Sparse):
        return "sparse", " ".join(node.names())
    if isinstance(node, ObjectNode):
        return "object", node.class_path
    if isinstance(node, NamedTupleNode):
        return "namedtuple", node.class_path
    if isinstance(node, (ListNode, TupleNode)):
        kind = "list" if isinstance(node, ListNode) else "tuple"
        return kind, f"{len(node.items)} item{'' if len(node.items) == 1 else 's'}"
    if isinstance(node, DictNode):
        return "dict", f"{len(node.items)} key{'' if len(node.items) == 1 else 's'}"
    if isinstance(node, Value):
        return "value", json.dumps(node.value, ensure_ascii=False)
    if isinstance(node, Ref):
        return "ref", format_path(node.target) if node.target else ROOT_LABEL
    if isinstance(node, Skipped):
        return "skipped", node.reason
    raise TypeError(f"not a spec node: {node!r}")
