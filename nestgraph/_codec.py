"""The spec tree <-> its dict form (what YAML and JSON show), with a collecting validator.

Dict form, version 1::

    nestgraph: 1                      # format version, always first
    class: pkg.module:Model           # root object's class path ...
    fields:                           # ... and its fields, in the model's order
      x: tensor inputs/x:0            # a leaf: "<kind> <graph names or text>"
      lr: 0.001                       # null / bool / int / float: the value itself
      name: str my model              # a string value always starts with "str "
      layers:                         # a list is a YAML sequence
        - class: pkg.module:Dense
          fields: {w: variable enc/w:0, out: tensor enc/Relu:0}
      heads: {dict: {cls: ...}}       # a dict: {dict: {...}}; a tuple: {tuple: [...]}
      pair: {namedtuple: pkg:Pair, fields: {a: ..., b: ...}}
      best: ref layers.0              # the object first written at that path
      sess: skipped <why>             # recorded as skipped

A root that is not an object is written under ``root:`` instead of
``class``/``fields``. Every string scalar starts with its kind word (a leaf
handler's kind, or ``ref``, ``str``, ``skipped``), so a plain string can never
be mistaken for a binding. Decoding collects every problem, each with its
dotted path and YAML line, instead of stopping at the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import registry
from ._yamlio import scalar_problem
from .errors import Problem, SpecError
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
    Value,
)
from .paths import PathTuple, format_path, parse_path

__all__ = ["SPEC_VERSION", "decode", "encode", "type_name"]

SPEC_VERSION = 1
_HEADERS = ("class", "namedtuple", "dict", "tuple")
_TOP_KEYS = frozenset({"nestgraph", "class", "fields", "root"})
_LOOSE_CLASS_PATH = re.compile(r"[^\s:]+:[^\s:]+\Z")


def _encode_fields(fields: Mapping[str, SpecNode]) -> dict[str, Any]:
    return {k: encode(v) for k, v in fields.items()}


def encode(node: SpecNode) -> Any:
    """One spec node in dict form."""
    if isinstance(node, Value):
        return f"str {node.value}" if isinstance(node.value, str) else node.value
    if isinstance(node, Leaf):
        return f"{node.kind} {node.text}"
    if isinstance(node, Ref):
        return "ref " + (format_path(node.target) if node.target else ".")
    if isinstance(node, Skipped):
        return f"skipped {node.reason}"
    if isinstance(node, ObjectNode):
        return {"class": node.class_path, "fields": _encode_fields(node.fields)}
    if isinstance(node, NamedTupleNode):
        return {"namedtuple": node.class_path, "fields": _encode_fields(node.fields)}
    if isinstance(node, ListNode):
        return [encode(v) for v in node.items]
    if isinstance(node, TupleNode):
        return {"tuple": [encode(v) for v in node.items]}
    if isinstance(node, DictNode):
        return {"dict": _encode_fields(node.items)}
    raise TypeError(f"not a spec node: {node!r}")


def _reserved_field(name: str) -> bool:
    # Setting these on a rebuilt object would change how Python or nestgraph treat it.
    return (name.startswith("__") and name.endswith("__")) or name.startswith("_nestgraph")


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


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

    def node(
        self, data: Any, path: PathTuple, ypath: tuple[Any, ...], depth: int
    ) -> SpecNode | None:
        if self.yaml_lines:
            line = self.line(ypath)
            if line is not None:
                self.node_lines[path] = line
        if depth > MAX_DEPTH:
            self.fail(path, ypath, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if data is None or isinstance(data, (str, bool, int, float)):
            problem = scalar_problem(data)
            if problem is not None:
                self.fail(path, ypath, problem)
                return None
            if isinstance(data, str):
                return self.scalar_string(data, path, ypath)
            return Value(data)
        if isinstance(data, list):
            return ListNode(self.items(data, path, ypath, depth))
        if isinstance(data, dict):
            return self.mapping(data, path, ypath, depth)
        self.fail(path, ypath, f"unsupported value of type {type(data).__name__}")
        return None

    def items(
        self, data: list[Any], path: PathTuple, ypath: tuple[Any, ...], depth: int
    ) -> list[SpecNode]:
        out: list[SpecNode] = []
        for i, item in enumerate(data):
            child = self.node(item, (*path, i), (*ypath, i), depth + 1)
            out.append(child if child is not None else Value(None))
        return out

    def fields(
        self, data: Any, path: PathTuple, ypath: tuple[Any, ...], depth: int, what: str
    ) -> dict[str, SpecNode]:
        if not isinstance(data, dict):
            self.fail(path, ypath, f"{what} must be a mapping, not {type_name(data)}")
            return {}
        out: dict[str, SpecNode] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                self.fail(path, ypath, f"key {key!r} must be a string (quote it in YAML)")
                continue
            problem = scalar_problem(key)
            if problem is not None:
                self.fail(path, ypath, f"key {key!r}: {problem}")
                continue
            if what == "'fields'" and _reserved_field(key):
                self.fail(
                    (*path, key),
                    (*ypath, key),
                    f"field name {key!r} is reserved (Python's own __names__ and nestgraph's "
                    "_nestgraph_* attributes cannot be model fields)",
                )
                continue
            child = self.node(value, (*path, key), (*ypath, key), depth + 1)
            if child is not None:
                out[key] = child
        return out

    def mapping(
        self, data: dict[Any, Any], path: PathTuple, ypath: tuple[Any, ...], depth: int
    ) -> SpecNode | None:
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
                self.fail(path, (*ypath, header), f"'tuple' takes a list, not {type_name(body)}")
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

    def scalar_string(self, text: str, path: PathTuple, ypath: tuple[Any, ...]) -> SpecNode | None:
        kind, _, rest = text.partition(" ")
        if kind == "str":
            return Value(rest)
        if kind == "skipped":
            return Skipped(rest)
        if kind == "ref":
            try:
                return Ref(parse_path(rest))
            except SpecError as exc:
                self.fail(path, ypath, f"bad ref: {exc.detail}")
                return None
        handler = registry.handler_for_kind(kind)
        if handler is not None:
            try:
                return handler.parse(rest)
            except ValueError as exc:
                self.fail(path, ypath, str(exc))
                return None
        self.fail(
            path,
            ypath,
            f"{text!r} does not start with a kind (tensor, op, variable, sparse, ref, str, "
            f"skipped, or another kind of the spec format); a plain string is written "
            f"'str {text}'",
        )
        return None


def decode(
    data: Any,
    *,
    source: str | None = None,
    yaml_lines: Mapping[tuple[Any, ...], int] | None = None,
) -> tuple[SpecNode, dict[PathTuple, int], list[Problem]]:
    """``(root, node lines, problems)`` for ``data`` in dict form.

    Structural problems of the document itself (not a mapping, no or a newer
    version) raise ``SpecError`` at once; everything else is collected.
    """
    reader = _Reader(yaml_lines)
    if not isinstance(data, dict):
        raise SpecError(
            f"a spec is a mapping starting with 'nestgraph: {SPEC_VERSION}', not {type_name(data)}",
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
    root: SpecNode | None
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
    return (root if root is not None else Value(None)), reader.node_lines, reader.problems
