"""``Spec``: a model's structure as a value, and the tree operations on it.

This module never touches TensorFlow; the dict form is ``_codec``'s, YAML text
goes through ``_yamlio``. Specs are values: every operation returns a new
``Spec``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from . import _codec, registry
from ._codec import SPEC_VERSION
from .errors import Problem, SpecError
from .nodes import (
    Leaf,
    ListNode,
    ObjectNode,
    Ref,
    Skipped,
    SpecNode,
    TupleNode,
    children,
    describe,
    is_branch,
    iter_nodes,
    rebuild,
)
from .paths import Key, PathTuple, format_path, list_index, parse_path

if TYPE_CHECKING:
    from ._specdiff import SpecDiff

__all__ = ["SPEC_VERSION", "BindingRecord", "Spec", "leaf_parts"]

_MAX_REF_HOPS = 64


@dataclass(frozen=True)
class BindingRecord:
    """One graph name in a spec: where it is bound, as what, and to which name.

    ``leaf`` is the kind word of the leaf holding it (``sparse`` for the three
    names of a SparseTensor), ``kind`` how the name is looked up.
    """

    path: str
    kind: str
    name: str
    leaf: str = ""


def leaf_parts(leaf: Leaf) -> list[tuple[tuple[str, ...], str, str]]:
    """``(path suffix, lookup kind, graph name)`` for each graph name ``leaf`` holds."""
    handler = registry.handler_for_kind(leaf.kind)
    if handler is None or not handler.parts:
        return []
    return [
        ((part,) if part else (), lookup, name)
        for (part, lookup), name in zip(handler.parts, leaf.names, strict=False)
    ]


class Spec:
    """A model's structure: a tree of nodes mirroring the model, bound to graph names.

    Build one with ``ng.to_graph(model)``, ``Spec.from_yaml`` or ``Spec.from_dict``.
    Specs are values: every operation returns a new ``Spec``.
    """

    # ``_arrays``: the arrays a walk made bundle members of (``arrays/<n>.npy`` -> array),
    # for the bundle writer; not part of the spec's value.
    __slots__ = ("_arrays", "_lines", "root", "source")

    def __init__(
        self,
        root: SpecNode,
        *,
        source: str | None = None,
        lines: Mapping[PathTuple, int] | None = None,
    ) -> None:
        self.root = root
        self.source = source
        self._lines: Mapping[PathTuple, int] = lines or {}
        self._arrays: Mapping[str, Any] = {}

    # -- dict and YAML ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible dict form (``nestgraph: 1`` first)."""
        data: dict[str, Any] = {"nestgraph": SPEC_VERSION}
        if isinstance(self.root, ObjectNode):
            data.update(_codec.encode(self.root))
        else:
            data["root"] = _codec.encode(self.root)
        return data

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        source: str | None = None,
        _yaml_lines: Mapping[tuple[Any, ...], int] | None = None,
    ) -> Spec:
        """Validate ``data`` (the dict form) and build a Spec.

        Raises ``SpecError`` listing every problem found, each with its dotted
        path (and line, when the data came from YAML).
        """
        root, lines, problems = _codec.decode(data, source=source, yaml_lines=_yaml_lines)
        spec = cls(root, source=source, lines=lines)
        problems.extend(spec._ref_problems())
        if problems:
            raise SpecError(problems=problems, source=source)
        return spec

    def to_yaml(self) -> str:
        """The spec as YAML text (block style, no aliases, keys in model order)."""
        from ._yamlio import dump_yaml

        return dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(
        cls, data: str | bytes | IO[str] | IO[bytes], *, source: str | None = None
    ) -> Spec:
        """Parse and validate YAML text, bytes or an open file.

        Only safe YAML is read, with bounds on size, depth and alias expansion;
        every problem is a ``SpecError`` naming the source and line.
        """
        from ._yamlio import load_yaml

        if hasattr(data, "read"):
            if source is None:
                source = str(getattr(data, "name", "<stream>"))
            data = data.read()
        if source is None:
            source = "<string>"
        tree, lines = load_yaml(data, source=source)
        return cls.from_dict(tree, source=source, _yaml_lines=lines)

    # -- queries --------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        return self.root == other.root

    def __hash__(self) -> int:
        raise TypeError("Spec is not hashable")

    def __repr__(self) -> str:
        n = sum(1 for _ in self.bindings())
        what = (
            self.root.class_path if isinstance(self.root, ObjectNode) else type(self.root).__name__
        )
        return f"<nestgraph.Spec {what} with {n} bindings>"

    def line_of(self, path: PathTuple) -> int | None:
        """The YAML line a node was read from, when known."""
        return self._lines.get(path)

    def bindings(self) -> Iterator[BindingRecord]:
        """Every graph name in document order; a SparseTensor gives three tensors.

        A leaf of several parts (``sparse``) gives one record per part, at
        ``path.part``; the kind is how the name is looked up (tensor, op, variable).
        """
        for path, node in iter_nodes(self.root):
            if isinstance(node, Leaf):
                for suffix, kind, name in leaf_parts(node):
                    yield BindingRecord(format_path((*path, *suffix)), kind, name, node.kind)

    def flatten(self) -> dict[str, str]:
        """``{dotted path: graph name}`` for every binding.

        >>> spec = Spec.from_yaml("nestgraph: 1\\nroot: [tensor enc/l0/out:0, op train]")
        >>> spec.flatten()
        {'0': 'enc/l0/out:0', '1': 'train'}
        """
        return {b.path: b.name for b in self.bindings()}

    @property
    def skipped(self) -> dict[str, str]:
        """``{dotted path: reason}`` for every field that could not be recorded."""
        return {
            format_path(path): node.reason
            for path, node in iter_nodes(self.root)
            if isinstance(node, Skipped)
        }

    def resolve(self, keys: tuple[str, ...] | str) -> tuple[PathTuple, SpecNode]:
        """The canonical path and node at ``keys``, following refs on the way.

        A final ref is followed too, so the node returned is never a ``Ref``.
        """
        if isinstance(keys, str):
            keys = parse_path(keys)
        return self._resolve(keys, _MAX_REF_HOPS, follow_last=True)

    def _resolve(
        self, keys: tuple[str, ...], hops: int, *, follow_last: bool
    ) -> tuple[PathTuple, SpecNode]:
        node: SpecNode = self.root
        canon: PathTuple = ()
        for key in keys:
            if isinstance(node, Ref):
                if hops <= 0:
                    raise SpecError("refs form a loop", path=format_path(canon))
                hops -= 1
                canon, node = self._resolve(node.target, hops, follow_last=True)
            step = _child(node, key)
            if step is None:
                raise SpecError(
                    f"no {key!r} here ({_what(node)})",
                    path=format_path((*canon, key)),
                )
            canon = (*canon, step[0])
            node = step[1]
        if follow_last and isinstance(node, Ref):
            if hops <= 0:
                raise SpecError("refs form a loop", path=format_path(canon))
            return self._resolve(node.target, hops - 1, follow_last=True)
        return canon, node

    def _ref_problems(self) -> list[Problem]:
        problems = []
        for path, node in iter_nodes(self.root):
            if not isinstance(node, Ref):
                continue
            where = format_path(path)
            try:
                _, target = self._resolve(node.target, _MAX_REF_HOPS, follow_last=False)
            except SpecError as exc:
                problems.append(
                    Problem(
                        where,
                        f"ref {format_path(node.target)!r}: {exc.detail}",
                        self._lines.get(path),
                    )
                )
                continue
            if isinstance(target, Ref):
                problems.append(
                    Problem(
                        where,
                        f"ref points at another ref ({format_path(node.target)!r}); "
                        "point it at the object itself",
                        self._lines.get(path),
                    )
                )
            elif not is_branch(target):
                problems.append(
                    Problem(
                        where,
                        f"ref {format_path(node.target)!r} points at a "
                        f"{_what(target)}; refs name objects and containers",
                        self._lines.get(path),
                    )
                )
        return problems

    # -- transformations -------------------------------------------------------

    def _derived(self, root: SpecNode, lines: Mapping[PathTuple, int]) -> Spec:
        spec = Spec(root, source=self.source, lines=lines)
        spec._arrays = self._arrays
        return spec

    def subtree(self, path: str | tuple[str, ...]) -> Spec:
        """A self-contained Spec re-rooted at ``path``.

        An object the subtree shares with the rest of the model (a ref pointing
        outside it) is copied in at its first use, so nothing is lost.
        """
        canon, start = self.resolve(path)
        if not canon:
            return self._derived(self.root, self._lines)
        n = len(canon)
        # Lines of the nodes inside the subtree carry over; objects copied in from
        # outside it (through refs) have none.
        lines = {p[n:]: line for p, line in self._lines.items() if p[:n] == canon}
        return self._derived(_Rerooter(self).copy(start, ()), lines)

    def map_bindings(self, fn: Callable[[str, str], tuple[str, str]]) -> Spec:
        """A new Spec with ``fn(kind, name) -> (kind, name)`` applied to every binding.

        Each graph name of a leaf is passed with its lookup kind (a SparseTensor's
        parts as ``("tensor", name)``); only single-name leaves may change kind.
        """
        return self._derived(_map(self.root, (), fn, None), self._lines)

    def rescope(self, old: str, new: str, subtree: str | None = None) -> Spec:
        """A new Spec whose names starting with ``old`` start with ``new`` instead.

        With ``subtree``, only names bound inside that part of the model change.
        Raises ``SpecError`` when no name matches (a typo would otherwise pass).

        >>> spec = Spec.from_yaml("nestgraph: 1\\nroot: [tensor tower_0/o:0, tensor tower_0/i:0]")
        >>> spec.rescope("tower_0/", "tower_1/", subtree="0").flatten()
        {'0': 'tower_1/o:0', '1': 'tower_0/i:0'}
        """
        if not isinstance(old, str) or not isinstance(new, str) or not old:
            raise SpecError("rescope needs a non-empty old prefix and a new prefix (strings)")
        within: PathTuple | None = None
        if subtree is not None:
            within, _ = self.resolve(subtree)
        hits = 0

        def rename(kind: str, name: str) -> tuple[str, str]:
            nonlocal hits
            if name.startswith(old):
                hits += 1
                return kind, new + name[len(old) :]
            return kind, name

        root = _map(self.root, (), rename, within)
        if not hits:
            where = f" under {format_path(within)!r}" if within else ""
            raise SpecError(f"no name{where} starts with {old!r}; nothing to rescope")
        return self._derived(root, self._lines)

    def diff(self, other: Spec) -> SpecDiff:
        """What changed from this spec to ``other``: removed, added, rebound, class, changed.

        ``bool(result)`` is true when they differ; ``str(result)`` is the table
        ``nestgraph diff`` prints.

        >>> old = Spec.from_dict({"nestgraph": 1, "root": {"dict": {"x": "tensor x:0"}}})
        >>> print(old.diff(Spec.from_dict({"nestgraph": 1, "root": {"dict": {"x": "op x"}}})))
        rebound  x  tensor x:0 -> op x
        """
        from ._specdiff import diff_trees

        if not isinstance(other, Spec):
            raise TypeError(f"diff takes a Spec, not {type(other).__name__}")
        return diff_trees(self.root, other.root)

    @classmethod
    def from_flat(
        klass, mapping: Mapping[str, str], graph: Any, cls: type | str | None = None
    ) -> Spec:
        """A versioned spec from the seed's flat ``{field: graph name}`` dict.

        Each binding's kind is read from ``graph`` (any object with the methods
        of a ``tf.Graph``): ``name:N`` is a tensor, or a variable when a variable
        collection holds it; a name without ``:N`` is an op. Dotted keys stay flat
        fields. With ``cls`` (a class or ``"module:QualName"``) the root is an
        object of that class, otherwise a dict.

        Raises ``BindingError`` listing every name not in the graph, with the closest names.

        >>> import tensorflow as tf
        >>> with tf.Graph().as_default() as graph:
        ...     x = tf.compat.v1.placeholder(tf.float32, name="x")
        >>> Spec.from_flat({"x": "x:0", "feed": "x"}, graph).flatten()
        {'x': 'x:0', 'feed': 'x'}
        """
        from ._flat import flat_to_spec_dict

        return klass.from_dict(flat_to_spec_dict(mapping, graph, cls))


def _child(node: SpecNode, key: str) -> tuple[Key, SpecNode] | None:
    for k, child in children(node):
        if k == key if isinstance(k, str) else list_index(key) == k:
            return k, child
    return None


def _what(node: SpecNode) -> str:
    kind, _ = describe(node)
    if isinstance(node, ObjectNode):
        return f"object {node.class_path}"
    if isinstance(node, (ListNode, TupleNode)):
        return f"{kind} of {len(node.items)}"
    if isinstance(node, Leaf):
        return f"{kind} binding"
    return kind


def _map(
    node: SpecNode,
    path: PathTuple,
    fn: Callable[[str, str], tuple[str, str]],
    within: PathTuple | None,
) -> SpecNode:
    inside = within is None or path[: len(within)] == within
    if isinstance(node, Leaf):
        parts = leaf_parts(node)
        if not inside or not parts:
            return node
        if len(parts) == 1:
            kind, name = fn(parts[0][1], parts[0][2])
            if kind != parts[0][1]:
                return Leaf(kind, (name,))
            return Leaf(node.kind, (name,), node.value)
        names = []
        for _, lookup, old_name in parts:
            kind, name = fn(lookup, old_name)
            if kind != lookup:
                raise SpecError(
                    f"the parts of a {node.kind!r} leaf keep their kinds", path=format_path(path)
                )
            names.append(name)
        return Leaf(node.kind, tuple(names), node.value)
    if not is_branch(node):
        return node
    kids = [(k, _map(v, (*path, k), fn, within)) for k, v in children(node)]
    return rebuild(node, kids)


class _Rerooter:
    """Copies a subtree, turning refs to outside objects into inline copies."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.new_paths: dict[int, PathTuple] = {}

    def copy(self, node: SpecNode, new_path: PathTuple) -> SpecNode:
        if isinstance(node, Ref):
            _, node = self.spec.resolve(node.target)
        if not is_branch(node):
            return node
        seen = self.new_paths.get(id(node))
        if seen is not None:
            return Ref(tuple(str(k) for k in seen))
        self.new_paths[id(node)] = new_path
        kids = [(k, self.copy(v, (*new_path, k))) for k, v in children(node)]
        return rebuild(node, kids)
