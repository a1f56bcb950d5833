"""``Spec``: the spec tree plus its dict form, validation and tree operations.

This module never touches TensorFlow; YAML text goes through ``_yamlio``.

Dict form (what ``to_dict`` returns and YAML shows), version 1::

    nestgraph: 1                      # format version, always first
    class: pkg.module:Model           # root object's class path ...
    fields:                           # ... and its fields, in the model's order
      x: tensor inputs/x:0            # a binding: "<kind> <graph name>"
      lr: 0.001                       # null / bool / int / float: the value itself
      name: str my model              # a string value always starts with "str "
      layers:                         # a list is a YAML sequence
        - class: pkg.module:Dense
          fields: {w: variable enc/w:0, out: tensor enc/Relu:0}
      heads: {dict: {cls: ...}}       # a dict: {dict: {...}}; a tuple: {tuple: [...]}
      pair: {namedtuple: pkg:Pair, fields: {a: ..., b: ...}}
      best: ref layers.0              # the object first written at that path
      sess: skipped <why>             # recorded as skipped; rebuilt as None

A root that is not an object is written under ``root:`` instead of
``class``/``fields``. Every string scalar starts with its kind (``tensor``,
``op``, ``variable``, ``sparse``, ``ref``, ``str``, ``skipped``), so a plain
string can never be mistaken for a binding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from .errors import Problem, SpecError
from .nodes import (
    BINDING_KINDS,
    SPARSE_PARTS,
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
    children,
    iter_nodes,
)
from .paths import Key, PathTuple, format_path, parse_path
from .walker import MAX_DEPTH

if TYPE_CHECKING:
    from ._specdiff import SpecDiff

__all__ = ["SPEC_VERSION", "BindingRecord", "Spec"]

SPEC_VERSION = 1
_HEADERS = ("class", "namedtuple", "dict", "tuple")
_TOP_KEYS = frozenset({"nestgraph", "class", "fields", "root"})
_OP_NAME = re.compile(r"[^\s:]+\Z")
_TENSOR_NAME = re.compile(r"\S+:\d+\Z")
_LOOSE_CLASS_PATH = re.compile(r"[^\s:]+:[^\s:]+\Z")
_MAX_REF_HOPS = 64


@dataclass(frozen=True)
class BindingRecord:
    """One graph name in a spec: where it is bound, as what, and to which name."""

    path: str
    kind: str
    name: str


# --------------------------------------------------------------------------- encode


def _encode(node: Node) -> Any:
    if isinstance(node, Value):
        return f"str {node.value}" if isinstance(node.value, str) else node.value
    if isinstance(node, Binding):
        return f"{node.kind} {node.name}"
    if isinstance(node, Sparse):
        return f"sparse {node.indices} {node.values} {node.dense_shape}"
    if isinstance(node, Ref):
        return "ref " + (format_path(node.target) if node.target else ".")
    if isinstance(node, Skipped):
        return f"skipped {node.reason}"
    if isinstance(node, ObjectNode):
        return {"class": node.class_path, "fields": {k: _encode(v) for k, v in node.fields.items()}}
    if isinstance(node, NamedTupleNode):
        return {
            "namedtuple": node.class_path,
            "fields": {k: _encode(v) for k, v in node.fields.items()},
        }
    if isinstance(node, ListNode):
        return [_encode(v) for v in node.items]
    if isinstance(node, TupleNode):
        return {"tuple": [_encode(v) for v in node.items]}
    if isinstance(node, DictNode):
        return {"dict": {k: _encode(v) for k, v in node.items.items()}}
    raise TypeError(f"not a spec node: {node!r}")


# --------------------------------------------------------------------------- decode


class _Reader:
    """Dict form -> node tree, collecting every problem with its path and line."""

    def __init__(self, yaml_lines: Mapping[tuple[Any, ...], int] | None) -> None:
        self.problems: list[Problem] = []
        self.yaml_lines = yaml_lines
        self.node_lines: dict[PathTuple, int] = {}

    def line(self, ypath: tuple[Any, ...]) -> int | None:
        if not self.yaml_lines:
            return None
        while True:
            found = self.yaml_lines.get(ypath)
            if found is not None or not ypath:
                return found
            ypath = ypath[:-1]

    def fail(self, path: PathTuple, ypath: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(format_path(path), message, self.line(ypath)))

    def node(self, data: Any, path: PathTuple, ypath: tuple[Any, ...], depth: int) -> Node | None:
        if self.yaml_lines:
            line = self.line(ypath)
            if line is not None:
                self.node_lines[path] = line
        if depth > MAX_DEPTH:
            self.fail(path, ypath, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(data, str):
            return self.scalar_string(data, path, ypath)
        if data is None or isinstance(data, (bool, int, float)):
            return Value(data)
        if isinstance(data, list):
            return ListNode(self.items(data, path, ypath, depth))
        if isinstance(data, dict):
            return self.mapping(data, path, ypath, depth)
        self.fail(path, ypath, f"unsupported value of type {type(data).__name__}")
        return None

    def items(
        self, data: list[Any], path: PathTuple, ypath: tuple[Any, ...], depth: int
    ) -> list[Node]:
        out: list[Node] = []
        for i, item in enumerate(data):
            child = self.node(item, (*path, i), (*ypath, i), depth + 1)
            out.append(child if child is not None else Value(None))
        return out

    def fields(
        self, data: Any, path: PathTuple, ypath: tuple[Any, ...], depth: int, what: str
    ) -> dict[str, Node]:
        if not isinstance(data, dict):
            self.fail(path, ypath, f"{what} must be a mapping, not {_type_name(data)}")
            return {}
        out: dict[str, Node] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                self.fail(path, ypath, f"key {key!r} must be a string (quote it in YAML)")
                continue
            child = self.node(value, (*path, key), (*ypath, key), depth + 1)
            if child is not None:
                out[key] = child
        return out

    def mapping(
        self, data: dict[Any, Any], path: PathTuple, ypath: tuple[Any, ...], depth: int
    ) -> Node | None:
        headers = [h for h in _HEADERS if h in data]
        if len(headers) != 1:
            found = "none" if not headers else " and ".join(repr(h) for h in headers)
            self.fail(
                path,
                ypath,
                "a mapping must have exactly one of 'class', 'namedtuple', 'dict' or 'tuple' "
                f"(found {found}); a plain dict is written {{dict: {{...}}}}",
            )
            return None
        header = headers[0]
        allowed = {header, "fields"} if header in ("class", "namedtuple") else {header}
        extra = [k for k in data if k not in allowed]
        if extra:
            self.fail(
                path,
                ypath,
                f"unexpected key(s) {', '.join(repr(k) for k in extra)} beside {header!r}; "
                f"allowed: {', '.join(sorted(allowed))}",
            )
        body = data[header]
        if header == "tuple":
            if not isinstance(body, list):
                self.fail(path, (*ypath, header), f"'tuple' takes a list, not {_type_name(body)}")
                return None
            return TupleNode(self.items(body, path, (*ypath, header), depth))
        if header == "dict":
            return DictNode(self.fields(body, path, (*ypath, header), depth, "'dict'"))
        if not isinstance(body, str) or not _LOOSE_CLASS_PATH.match(body):
            self.fail(
                path,
                (*ypath, header),
                f"{header!r} must be a class path 'module:QualName', not {body!r}",
            )
            return None
        fields = self.fields(data.get("fields", {}), path, (*ypath, "fields"), depth, "'fields'")
        if header == "class":
            return ObjectNode(body, fields)
        return NamedTupleNode(body, fields)

    def scalar_string(self, text: str, path: PathTuple, ypath: tuple[Any, ...]) -> Node | None:
        kind, _, rest = text.partition(" ")
        if kind == "str":
            return Value(rest)
        if kind == "skipped":
            return Skipped(rest)
        if kind in BINDING_KINDS:
            pattern = _OP_NAME if kind == "op" else _TENSOR_NAME
            if not pattern.match(rest):
                hint = "an op name has no ':N'" if kind == "op" else f"a {kind} name ends in ':N'"
                if kind == "op" and _TENSOR_NAME.match(rest):
                    hint += f" (did you mean 'op {rest.rsplit(':', 1)[0]}' or 'tensor {rest}'?)"
                self.fail(path, ypath, f"bad {kind} name {rest!r}: {hint}")
                return None
            return Binding(kind, rest)
        if kind == "sparse":
            names = rest.split(" ")
            if len(names) != 3 or not all(_TENSOR_NAME.match(n) for n in names):
                self.fail(
                    path, ypath, "'sparse' takes three tensor names: indices, values, dense_shape"
                )
                return None
            return Sparse(*names)
        if kind == "ref":
            try:
                return Ref(parse_path(rest))
            except SpecError as exc:
                self.fail(path, ypath, f"bad ref: {exc.message}")
                return None
        self.fail(
            path,
            ypath,
            f"{text!r} does not start with a kind (tensor, op, variable, sparse, ref, str, "
            f"skipped); a plain string is written 'str {text}'",
        )
        return None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------- Spec


class Spec:
    """A model's structure: a tree of nodes mirroring the model, bound to graph names.

    Build one with ``ng.to_graph(model)``, ``Spec.from_yaml`` or ``Spec.from_dict``.
    Specs are values: every operation returns a new ``Spec``.
    """

    __slots__ = ("_lines", "root", "source")

    def __init__(
        self,
        root: Node,
        *,
        source: str | None = None,
        lines: Mapping[PathTuple, int] | None = None,
    ) -> None:
        self.root = root
        self.source = source
        self._lines: Mapping[PathTuple, int] = lines or {}

    # -- dict and YAML ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible dict form (``nestgraph: 1`` first)."""
        data: dict[str, Any] = {"nestgraph": SPEC_VERSION}
        if isinstance(self.root, ObjectNode):
            data.update(_encode(self.root))
        else:
            data["root"] = _encode(self.root)
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
        reader = _Reader(_yaml_lines)
        if not isinstance(data, dict):
            raise SpecError(
                f"a spec is a mapping starting with 'nestgraph: {SPEC_VERSION}', "
                f"not {_type_name(data)}",
                source=source,
                line=reader.line(()),
            )
        version = data.get("nestgraph")
        if version is None:
            raise SpecError(
                f"not a nestgraph spec: the key 'nestgraph: {SPEC_VERSION}' is missing (an "
                "old flat {field: tensor_name} dict becomes a spec with ng.Spec.from_flat(mapping, "
                "graph) or 'nestgraph upgrade OLD.json GRAPH -o NEW.yaml')",
                source=source,
                line=reader.line(()),
            )
        if type(version) is not int or version < 1:
            raise SpecError(
                f"'nestgraph' must be the format version {SPEC_VERSION}, not {version!r}",
                source=source,
                line=reader.line(("nestgraph",)),
            )
        if version > SPEC_VERSION:
            raise SpecError(
                f"spec format version {version} is newer than this nestgraph reads "
                f"({SPEC_VERSION}); upgrade nestgraph",
                source=source,
                line=reader.line(("nestgraph",)),
            )
        extra = sorted(str(k) for k in data if k not in _TOP_KEYS)
        if extra:
            reader.fail((), (), f"unexpected top-level key(s): {', '.join(extra)}")
        root: Node | None
        if "root" in data:
            if "class" in data or "fields" in data:
                reader.fail((), (), "use either 'root' or 'class'/'fields' at the top, not both")
            root = reader.node(data["root"], (), ("root",), 0)
        elif "class" in data:
            body = {k: v for k, v in data.items() if k in ("class", "fields")}
            root = reader.mapping(body, (), (), 0)
        else:
            reader.fail((), (), "a spec needs 'class' and 'fields' (or 'root') at the top")
            root = None
        spec = cls(
            root if root is not None else Value(None), source=source, lines=reader.node_lines
        )
        reader.problems.extend(spec._ref_problems())
        if reader.problems:
            raise SpecError(problems=reader.problems, source=source)
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
        """Every graph name in document order; a SparseTensor gives three tensors."""
        for path, node in iter_nodes(self.root):
            if isinstance(node, Binding):
                yield BindingRecord(format_path(path), node.kind, node.name)
            elif isinstance(node, Sparse):
                for part, name in zip(SPARSE_PARTS, node.names(), strict=True):
                    yield BindingRecord(format_path((*path, part)), "tensor", name)

    def flatten(self) -> dict[str, str]:
        """``{dotted path: graph name}`` for every binding.

        >>> spec.flatten()  # doctest: +SKIP
        {'encoder.layers.0.w': 'encoder/layer_0/w:0', ...}
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

    def resolve(self, keys: tuple[str, ...] | str) -> tuple[PathTuple, Node]:
        """The canonical path and node at ``keys``, following refs on the way.

        A final ref is followed too, so the node returned is never a ``Ref``.
        """
        if isinstance(keys, str):
            keys = parse_path(keys)
        return self._resolve(keys, _MAX_REF_HOPS, follow_last=True)

    def _resolve(
        self, keys: tuple[str, ...], hops: int, *, follow_last: bool
    ) -> tuple[PathTuple, Node]:
        node: Node = self.root
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
            elif not isinstance(
                target, (ObjectNode, NamedTupleNode, ListNode, TupleNode, DictNode)
            ):
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

    def subtree(self, path: str | tuple[str, ...]) -> Spec:
        """A self-contained Spec re-rooted at ``path``.

        An object the subtree shares with the rest of the model (a ref pointing
        outside it) is copied in at its first use, so nothing is lost.
        """
        canon, start = self.resolve(path)
        if not canon:
            return Spec(self.root, source=self.source, lines=self._lines)
        n = len(canon)
        # Lines of the nodes inside the subtree carry over; objects copied in from
        # outside it (through refs) have none.
        lines = {p[n:]: line for p, line in self._lines.items() if p[:n] == canon}
        return Spec(_Rerooter(self).copy(start, ()), source=self.source, lines=lines)

    def map_bindings(self, fn: Callable[[str, str], tuple[str, str]]) -> Spec:
        """A new Spec with ``fn(kind, name) -> (kind, name)`` applied to every binding.

        SparseTensor components are passed as ``("tensor", name)`` and must stay tensors.
        """
        return Spec(_map(self.root, (), fn, None), source=self.source, lines=self._lines)

    def rescope(self, old: str, new: str, subtree: str | None = None) -> Spec:
        """A new Spec whose names starting with ``old`` start with ``new`` instead.

        With ``subtree``, only names bound inside that part of the model change.
        Raises ``SpecError`` when no name matches (a typo would otherwise pass).

        >>> spec.rescope("tower_0/", "tower_1/", subtree="towers.0")  # doctest: +SKIP
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
        return Spec(root, source=self.source, lines=self._lines)

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


def _child(node: Node, key: str) -> tuple[Key, Node] | None:
    if isinstance(node, (ObjectNode, NamedTupleNode)):
        found = node.fields.get(key)
        return None if found is None else (key, found)
    if isinstance(node, DictNode):
        found = node.items.get(key)
        return None if found is None else (key, found)
    if isinstance(node, (ListNode, TupleNode)) and key.isdigit() and int(key) < len(node.items):
        return int(key), node.items[int(key)]
    return None


def _what(node: Node) -> str:
    if isinstance(node, ObjectNode):
        return f"object {node.class_path}"
    if isinstance(node, (ListNode, TupleNode)):
        return f"{type(node).__name__[:-4].lower()} of {len(node.items)}"
    if isinstance(node, Binding):
        return f"{node.kind} binding"
    return type(node).__name__.lower().replace("node", "")


def _map(
    node: Node,
    path: PathTuple,
    fn: Callable[[str, str], tuple[str, str]],
    within: PathTuple | None,
) -> Node:
    inside = within is None or path[: len(within)] == within
    if isinstance(node, Binding):
        if not inside:
            return node
        kind, name = fn(node.kind, node.name)
        return Binding(kind, name)
    if isinstance(node, Sparse):
        if not inside:
            return node
        names = []
        for n in node.names():
            kind, name = fn("tensor", n)
            if kind != "tensor":
                raise SpecError("SparseTensor components must stay tensors", path=format_path(path))
            names.append(name)
        return Sparse(*names)
    kids = [(k, _map(v, (*path, k), fn, within)) for k, v in children(node)]
    return _rebuild(node, kids)


def _rebuild(node: Node, kids: list[tuple[Key, Node]]) -> Node:
    if isinstance(node, ObjectNode):
        return ObjectNode(node.class_path, {str(k): v for k, v in kids})
    if isinstance(node, NamedTupleNode):
        return NamedTupleNode(node.class_path, {str(k): v for k, v in kids})
    if isinstance(node, DictNode):
        return DictNode({str(k): v for k, v in kids})
    if isinstance(node, ListNode):
        return ListNode([v for _, v in kids])
    if isinstance(node, TupleNode):
        return TupleNode([v for _, v in kids])
    return node


class _Rerooter:
    """Copies a subtree, turning refs to outside objects into inline copies."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.new_paths: dict[int, PathTuple] = {}

    def copy(self, node: Node, new_path: PathTuple) -> Node:
        if isinstance(node, Ref):
            _, node = self.spec.resolve(node.target)
        if isinstance(node, (Value, Binding, Sparse, Skipped)):
            return node
        seen = self.new_paths.get(id(node))
        if seen is not None:
            return Ref(tuple(str(k) for k in seen))
        self.new_paths[id(node)] = new_path
        kids = [(k, self.copy(v, (*new_path, k))) for k, v in children(node)]
        return _rebuild(node, kids)
