"""The differences between two spec trees: what ``Spec.diff`` returns.

Works on spec-tree roots through ``nodes.iter_nodes`` and ``nodes.describe``
alone, so it follows whatever node types the tree has. Paths are compared by
their dotted text; a ref is compared as a ref (its target), never followed, so
each object is compared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ._table import format_table
from .errors import ROOT_LABEL
from .nodes import SpecNode, describe, iter_nodes
from .paths import format_path

__all__ = ["CATEGORIES", "DiffEntry", "SpecDiff", "diff_trees"]

#: The categories, in the order they are listed.
CATEGORIES = ("removed", "added", "rebound", "class", "changed")

_CONTAINERS = frozenset({"list", "tuple", "dict"})
_CLASSED = frozenset({"object", "namedtuple"})
_BINDINGS = frozenset({"tensor", "op", "variable", "sparse"})

Described = tuple[str, str]


class DiffEntry(NamedTuple):
    """One difference: the dotted path, the text shown, and ``(kind, detail)`` on each side."""

    path: str
    text: str
    old: Described | None
    new: Described | None


@dataclass(frozen=True)
class SpecDiff:
    """What differs between an old and a new spec, by category.

    ``removed``/``added``: paths present on one side only; ``rebound``: a binding
    whose kind or graph name changed; ``reclassed``: an object whose class path
    changed; ``changed``: a value that changed, or a path whose kind of node
    changed (a ref became a tensor). ``bool(diff)`` is true when anything
    differs; ``str(diff)`` is the table ``nestgraph diff`` prints.

    >>> from nestgraph import Spec
    >>> old = Spec.from_dict({"nestgraph": 1, "root": {"dict": {"x": "tensor x:0", "n": 1}}})
    >>> new = Spec.from_dict({"nestgraph": 1, "root": {"dict": {"x": "op x", "k": 2}}})
    >>> diff = old.diff(new)
    >>> bool(diff), diff.counts()
    (True, '1 removed, 1 added, 1 rebound')
    >>> print(diff)
    removed  n  value 1
    added    k  value 2
    rebound  x  tensor x:0 -> op x
    """

    removed: tuple[DiffEntry, ...] = ()
    added: tuple[DiffEntry, ...] = ()
    rebound: tuple[DiffEntry, ...] = ()
    reclassed: tuple[DiffEntry, ...] = ()
    changed: tuple[DiffEntry, ...] = ()

    def category(self, name: str) -> tuple[DiffEntry, ...]:
        """The entries of one category, by its printed name (``"class"`` is ``reclassed``)."""
        if name not in CATEGORIES:
            raise KeyError(f"no diff category {name!r}; categories: {', '.join(CATEGORIES)}")
        entries: tuple[DiffEntry, ...] = getattr(self, "reclassed" if name == "class" else name)
        return entries

    def __bool__(self) -> bool:
        return any(self.category(name) for name in CATEGORIES)

    def rows(self) -> list[tuple[str, str, str]]:
        """``(category, path, text)`` for every difference, category by category."""
        return [(name, e.path, e.text) for name in CATEGORIES for e in self.category(name)]

    def counts(self) -> str:
        """``"1 removed, 2 rebound"``: how many of each category (empty when equal)."""
        return ", ".join(
            f"{len(self.category(name))} {name}" for name in CATEGORIES if self.category(name)
        )

    def __str__(self) -> str:
        if not self:
            return "no differences"
        return "\n".join(format_table(self.rows()))


def _path_text(path: tuple[str | int, ...]) -> str:
    return format_path(path) if path else ROOT_LABEL


def _entries(root: SpecNode) -> dict[str, Described]:
    return {_path_text(path): describe(node) for path, node in iter_nodes(root)}


def _entry_text(entry: Described) -> str:
    kind, detail = entry
    return kind if kind in _CONTAINERS else f"{kind} {detail}"


def _difference(old: Described, new: Described) -> tuple[str, str] | None:
    """``(category, text)`` for one path present in both trees, or None when equal."""
    (old_kind, old_detail), (new_kind, new_detail) = old, new
    if old_kind == new_kind and old_kind in _CONTAINERS:
        return None  # their items are compared one by one
    if old == new:
        return None
    if old_kind == new_kind and old_kind in _CLASSED:
        return "class", f"{old_detail} -> {new_detail}"
    if old_kind in _BINDINGS and new_kind in _BINDINGS:
        return "rebound", f"{old_kind} {old_detail} -> {new_kind} {new_detail}"
    if old_kind == new_kind == "value":
        return "changed", f"{old_detail} -> {new_detail}"
    return "changed", f"{_entry_text(old)} -> {_entry_text(new)}"


def diff_trees(old_root: SpecNode, new_root: SpecNode) -> SpecDiff:
    """The differences from the tree ``old_root`` to the tree ``new_root``.

    Removed and changed paths come in the old tree's order, added ones in the new's.
    """
    old, new = _entries(old_root), _entries(new_root)
    found: dict[str, list[DiffEntry]] = {name: [] for name in CATEGORIES}
    for path, entry in old.items():
        if path not in new:
            found["removed"].append(DiffEntry(path, _entry_text(entry), entry, None))
            continue
        difference = _difference(entry, new[path])
        if difference is not None:
            found[difference[0]].append(DiffEntry(path, difference[1], entry, new[path]))
    found["added"] = [
        DiffEntry(path, _entry_text(entry), None, entry)
        for path, entry in new.items()
        if path not in old
    ]
    return SpecDiff(
        removed=tuple(found["removed"]),
        added=tuple(found["added"]),
        rebound=tuple(found["rebound"]),
        reclassed=tuple(found["class"]),
        changed=tuple(found["changed"]),
    )
