"""The spec tree: plain data nodes that mirror the model's nesting.

Leaves: ``Value`` (None, bool, int, float, str), ``Leaf`` (anything a leaf
handler records: graph elements by name, such as a tensor or a SparseTensor's
three tensors, or a value written as text), ``Ref`` (the object at another
path: shared objects and cycles), ``Skipped`` (a field nestgraph cannot record,
with the reason). Branches: ``ObjectNode``, ``NamedTupleNode``, ``ListNode``,
``TupleNode``, ``DictNode``.

What each node type does (its kind word, how it is described, its children,
how it is rebuilt with new children) is one row of ``NODE_TYPES``; the spec
codec, the tree operations, the binder and the command line all read that
table instead of keeping ``isinstance`` ladders of their own. ``iter_nodes`` is
the one traversal every consumer is built on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ROOT_LABEL
from .paths import Key, PathTuple, format_path

__all__ = [
    "MAX_DEPTH",
    "NODE_TYPES",
    "DictNode",
    "Leaf",
    "ListNode",
    "NamedTupleNode",
    "NodeType",
    "ObjectNode",
    "Ref",
    "Skipped",
    "SpecNode",
    "TupleNode",
    "Value",
    "children",
    "describe",
    "is_branch",
    "iter_nodes",
    "rebuild",
]

#: Deepest nesting of objects and containers the walker and the spec reader accept.
MAX_DEPTH = 100

Scalar = None | bool | int | float | str


class LookupKind:
    """How one graph name of a leaf is looked up in a graph (and what it must be)."""

    TENSOR = "tensor"
    OP = "op"
    VARIABLE = "variable"
    #: A partitioned variable, by its full name (no ':N'): all of its parts.
    PARTITIONED = "partitioned"
    ALL = (TENSOR, OP, VARIABLE, PARTITIONED)


@dataclass(frozen=True, slots=True)
class Value:
    value: Scalar


@dataclass(frozen=True, slots=True)
class Leaf:
    """One recorded leaf: its kind word, the graph names it holds, or a value as text.

    ``tensor x:0`` is ``Leaf("tensor", ("x:0",))``; ``sparse i:0 v:0 s:0`` is
    ``Leaf("sparse", ("i:0", "v:0", "s:0"))``; a leaf that holds no graph element
    (a dtype, say) keeps its text in ``value``; a leaf with both (a Saver: three
    names, then its flags) writes the names first. The leaf handler registered for
    ``kind`` says what the names are and how the leaf is rebuilt.
    """

    kind: str
    names: tuple[str, ...] = ()
    value: str | None = None

    @property
    def text(self) -> str:
        """What follows the kind word in the spec."""
        if self.value is None:
            return " ".join(self.names)
        return " ".join((*self.names, self.value)) if self.names else self.value


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
    fields: dict[str, SpecNode] = field(default_factory=dict)


@dataclass(slots=True, eq=True)
class NamedTupleNode:
    class_path: str
    fields: dict[str, SpecNode] = field(default_factory=dict)


@dataclass(slots=True, eq=True)
class ListNode:
    items: list[SpecNode] = field(default_factory=list)


@dataclass(slots=True, eq=True)
class TupleNode:
    items: list[SpecNode] = field(default_factory=list)


@dataclass(slots=True, eq=True)
class DictNode:
    items: dict[str, SpecNode] = field(default_factory=dict)


SpecNode = (
    Value | Leaf | Ref | Skipped | ObjectNode | NamedTupleNode | ListNode | TupleNode | DictNode
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class NodeType:
    """One row of the node table: the behaviour of one spec-node class."""

    #: The word ``show`` and ``diff`` print, and refs name ("object", "list", ...).
    kind: Callable[[Any], str]
    detail: Callable[[Any], str]
    #: Direct children in document order; empty for leaves.
    children: Callable[[Any], Iterator[tuple[Key, SpecNode]]]
    #: The same node with new children (in the order ``children`` gave them).
    rebuild: Callable[[Any, Sequence[tuple[Key, SpecNode]]], SpecNode]
    branch: bool


def _no_children(node: Any) -> Iterator[tuple[Key, SpecNode]]:
    return iter(())


def _same(node: Any, kids: Sequence[tuple[Key, SpecNode]]) -> SpecNode:
    return node


def _leaf_row(kind: Callable[[Any], str], detail: Callable[[Any], str]) -> NodeType:
    return NodeType(kind, detail, _no_children, _same, branch=False)


def _field_dict(kids: Sequence[tuple[Key, SpecNode]]) -> dict[str, SpecNode]:
    return {str(k): v for k, v in kids}


def _classed_row(kind: str, node_type: type) -> NodeType:
    """Objects and namedtuples: a class path and named fields."""
    return NodeType(
        lambda n: kind,
        lambda n: n.class_path,
        lambda n: iter(n.fields.items()),
        lambda n, kids: node_type(n.class_path, _field_dict(kids)),
        branch=True,
    )


def _sequence_row(kind: str, node_type: type) -> NodeType:
    """Lists and tuples: items by position."""
    return NodeType(
        lambda n: kind,
        lambda n: _plural(len(n.items), "item"),
        lambda n: enumerate(n.items),
        lambda n, kids: node_type([v for _, v in kids]),
        branch=True,
    )


NODE_TYPES: dict[type, NodeType] = {
    Value: _leaf_row(lambda n: "value", lambda n: json.dumps(n.value, ensure_ascii=False)),
    Leaf: _leaf_row(lambda n: n.kind, lambda n: n.text),
    Ref: _leaf_row(lambda n: "ref", lambda n: format_path(n.target) if n.target else ROOT_LABEL),
    Skipped: _leaf_row(lambda n: "skipped", lambda n: n.reason),
    ObjectNode: _classed_row("object", ObjectNode),
    NamedTupleNode: _classed_row("namedtuple", NamedTupleNode),
    ListNode: _sequence_row("list", ListNode),
    TupleNode: _sequence_row("tuple", TupleNode),
    DictNode: NodeType(
        lambda n: "dict",
        lambda n: _plural(len(n.items), "key"),
        lambda n: iter(n.items.items()),
        lambda n, kids: DictNode(_field_dict(kids)),
        branch=True,
    ),
}


def _row(node: SpecNode) -> NodeType:
    row = NODE_TYPES.get(type(node))
    if row is None:
        raise TypeError(f"not a spec node: {node!r}")
    return row


def children(node: SpecNode) -> Iterator[tuple[Key, SpecNode]]:
    """The direct children of a branch, in order (nothing for a leaf)."""
    return _row(node).children(node)


def rebuild(node: SpecNode, kids: Sequence[tuple[Key, SpecNode]]) -> SpecNode:
    """``node`` with ``kids`` as its children (a leaf comes back as it is)."""
    return _row(node).rebuild(node, kids)


def is_branch(node: SpecNode) -> bool:
    """True for objects, namedtuples, lists, tuples and dicts: what a ref may name."""
    return _row(node).branch


def describe(node: SpecNode) -> tuple[str, str]:
    """``(kind, detail)`` of one spec node, as ``show``, ``diff`` and ``summary`` print it.

    >>> describe(Leaf("tensor", ("x:0",)))
    ('tensor', 'x:0')
    >>> describe(ListNode([Value(1), Value(2)]))
    ('list', '2 items')
    """
    row = _row(node)
    return row.kind(node), row.detail(node)


def iter_nodes(node: SpecNode, path: PathTuple = ()) -> Iterator[tuple[PathTuple, SpecNode]]:
    """Every node below ``node`` (itself first), depth first, in document order.

    Refs are yielded as they are, never followed: each node appears once.
    Iterative, so a deep tree cannot exhaust the Python stack.
    """
    stack: list[tuple[PathTuple, SpecNode]] = [(path, node)]
    while stack:
        here, current = stack.pop()
        yield here, current
        kids = list(children(current))
        for key, child in reversed(kids):
            stack.append(((*here, key), child))
