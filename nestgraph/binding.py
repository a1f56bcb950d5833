"""from_graph and check: bind a spec to the elements of a ``tf.Graph``.

Validate eagerly, build lazily:

1. the selected subtree, plus everything it reaches through refs, is collected;
2. every graph name in it is looked up (after ``scope_map`` and
   ``import_scope``) and every class path goes through the policy; all
   problems are reported together, each with its dotted path;
3. objects are then created with ``cls.__new__`` (``__init__`` is never
   called). A ``GraphConvertible`` or generic ``Node`` gets its fields on first
   attribute access; other classes are filled at once. Lists, tuples and dicts
   are built when their owner is filled; their objects are again lazy.
"""

from __future__ import annotations

import collections
import difflib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import classpath
from .errors import BindingError, ClassNotAllowedError, NestgraphError, Problem, SpecError
from .nodes import (
    SPARSE_PARTS,
    Binding,
    DictNode,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    Sparse,
    TupleNode,
    Value,
    children,
)
from .nodes import Node as SpecNode
from .paths import PathTuple, format_path, parse_path
from .spec import Spec
from .walker import INTERNAL_ATTRS, slot_names, walk

__all__ = [
    "CheckReport",
    "Finding",
    "GraphConvertible",
    "Node",
    "check",
    "from_graph",
    "materialize",
    "to_graph",
]

T = TypeVar("T")
_PENDING = "_nestgraph_pending"
_MAX_SUGGESTIONS = 50


# --------------------------------------------------------------------------- lazy objects


class _Pending:
    """Fields still to be set on a lazily rebuilt object."""

    __slots__ = ("builder", "done", "fields", "lock", "path")

    def __init__(self, builder: _Builder, path: PathTuple, fields: dict[str, SpecNode]) -> None:
        self.builder = builder
        self.path = path
        self.fields = fields
        self.lock = threading.Lock()
        self.done = False

    def fill(self, obj: Any) -> None:
        with self.lock:
            if self.done:
                return
            self.builder.set_fields(obj, self.path, self.fields)
            self.done = True
            obj.__dict__.pop(_PENDING, None)


def materialize(obj: Any) -> Any:
    """Set every pending field of a lazily rebuilt object now; return ``obj``."""
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return obj
    pending = instance_dict.get(_PENDING)
    if isinstance(pending, _Pending):
        pending.fill(obj)
    return obj


class _LazyFields:
    """Fills a rebuilt object's fields the first time one is looked for."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            instance_dict = object.__getattribute__(self, "__dict__")
        except AttributeError:
            instance_dict = {}
        pending = instance_dict.get(_PENDING)
        if isinstance(pending, _Pending):
            pending.fill(self)
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> Any:
        # copy and pickle read __dict__ directly: fill it first.
        materialize(self)
        return {k: v for k, v in self.__dict__.items() if k != _PENDING}


class GraphConvertible(_LazyFields):
    """Mixin for model classes: walk with ``.to_graph()``, bind with ``.from_graph()``.

    Subclasses may be rebuilt from a spec without ``allow`` (when their module is
    imported), and their sub-objects are rebuilt lazily.
    """

    def to_graph(self, fields: Iterable[str] | Mapping[str, Any] | None = None) -> Spec:
        """This object's spec; ``fields`` limits it to those fields, in that order."""
        return to_graph(self, fields)

    def from_graph(self: T, spec: Spec | Mapping[str, Any], graph: Any = None, **kwargs: Any) -> T:
        """Bind this existing instance to ``graph`` as described by ``spec``.

        Accepts the keyword arguments of ``ng.from_graph`` (``subtree``,
        ``import_scope``, ``scope_map``, ``allow``, ``generic``). ``__init__``
        is not called again; the fields in the spec are set on ``self``.
        """
        _bind(spec, graph, target=self, **kwargs)
        return self


class Node(_LazyFields):
    """A generic object standing in for a class that could not be used.

    Holds the fields as attributes and remembers the class path, so walking it
    again writes the same spec.
    """

    def __init__(self, class_path: str, **fields: Any) -> None:
        self.__dict__["_nestgraph_class"] = class_path
        self.__dict__.update(fields)

    @property
    def nestgraph_class(self) -> str:
        """The class path this object stands for (``module:QualName``)."""
        return str(self.__dict__["_nestgraph_class"])

    def __repr__(self) -> str:
        materialize(self)
        shown = ", ".join(
            f"{k}={type(v).__name__}" for k, v in vars(self).items() if k not in INTERNAL_ATTRS
        )
        return f"Node({self._nestgraph_class!r}, {shown})"


def to_graph(model: Any, fields: Iterable[str] | Mapping[str, Any] | None = None) -> Spec:
    """Walk ``model`` into a ``Spec``.

    ``fields`` limits the root object to those fields in that order (a mapping
    such as ``model.__dict__`` contributes its keys).
    """
    return Spec(walk(model, fields))


# --------------------------------------------------------------------------- graph lookups


def _tf() -> Any:
    import tensorflow as tf

    return tf


class _GraphIndex:
    """Name lookups in one graph; candidate lists for suggestions built on demand."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self._variables: dict[str, Any] | None = None
        self._candidates: dict[str, tuple[list[str], dict[str, list[str]]]] = {}

    def op(self, name: str) -> Any:
        try:
            return self.graph.get_operation_by_name(name)
        except (KeyError, ValueError):
            return None

    def tensor(self, name: str) -> tuple[Any, str | None]:
        op_name, _, index = name.rpartition(":")
        op = self.op(op_name)
        if op is None:
            return None, None
        i = int(index)
        if i >= len(op.outputs):
            return None, f"op {op_name!r} has {len(op.outputs)} output(s), so no {name!r}"
        return op.outputs[i], None

    def variables(self) -> dict[str, Any]:
        if self._variables is None:
            tf = _tf()
            found: dict[str, Any] = {}
            pools: list[Iterable[Any]] = [
                self.graph.get_collection(k) for k in self.graph.get_all_collection_keys()
            ]
            pools.append(getattr(self.graph, "variables", ()) or ())  # a FuncGraph's captures
            for pool in pools:
                for item in pool:
                    if isinstance(item, tf.Variable):
                        found.setdefault(item.name, item)
            self._variables = found
        return self._variables

    def _pool(self, kind: str) -> tuple[list[str], dict[str, list[str]]]:
        if kind not in self._candidates:
            if kind == "variable":
                names = list(self.variables())
            elif kind == "op":
                names = [op.name for op in self.graph.get_operations()]
            else:
                names = [t.name for op in self.graph.get_operations() for t in op.outputs]
            by_base: dict[str, list[str]] = collections.defaultdict(list)
            for n in names:
                by_base[n.rsplit("/", 1)[-1]].append(n)
            self._candidates[kind] = (names, by_base)
        return self._candidates[kind]

    def closest(self, kind: str, name: str) -> str | None:
        names, by_base = self._pool(kind)
        same_base = by_base.get(name.rsplit("/", 1)[-1])
        if same_base:
            # A forgotten or extra import scope: the same name under another prefix.
            nested = [n for n in same_base if n.endswith("/" + name) or name.endswith("/" + n)]
            if nested:
                return min(nested, key=len)
        pool = same_base or names
        found = difflib.get_close_matches(name, pool, n=1, cutoff=0.5)
        return found[0] if found else None


@dataclass(frozen=True)
class Finding:
    """The outcome of binding one name: ``status`` is bound, missing or wrong_kind."""

    path: str
    kind: str
    name: str
    graph_name: str
    status: str
    message: str = ""
    closest: str | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "bound"

    def problem(self) -> Problem:
        return Problem(self.path, self.message, self.line)


@dataclass
class CheckReport:
    """What ``check`` found: one ``Finding`` per graph name in the selected subtree."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        bad = self.problems
        if not bad:
            return f"all {len(self.findings)} bindings found in the graph"
        lines = [f"{len(bad)} of {len(self.findings)} bindings have problems:"]
        lines.extend(f"  {f.problem()}" for f in bad)
        return "\n".join(lines)


class _NameMap:
    """scope_map prefix rewrites (longest prefix first), then the import scope."""

    def __init__(self, import_scope: str | None, scope_map: Mapping[str, str] | None) -> None:
        if scope_map is not None and not isinstance(scope_map, Mapping):
            raise TypeError("scope_map must be a mapping {old_prefix: new_prefix}")
        self.rules = sorted((scope_map or {}).items(), key=lambda kv: -len(kv[0]))
        self.prefix = import_scope.rstrip("/") + "/" if import_scope else ""

    def __call__(self, name: str) -> str:
        for old, new in self.rules:
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        return self.prefix + name


def _lookup(
    index: _GraphIndex, kind: str, spec_name: str, names: _NameMap
) -> tuple[Any, str, str, str | None]:
    """(element or None, graph name, message, closest) for one binding."""
    graph_name = names(spec_name)
    renamed = "" if graph_name == spec_name else f" (spec name {spec_name!r})"
    if kind == "op":
        op = index.op(graph_name)
        if op is not None:
            return op, graph_name, "", None
        return None, graph_name, f"no op {graph_name!r} in the graph{renamed}", "op"
    if kind == "variable":
        variable = index.variables().get(graph_name)
        if variable is not None:
            return variable, graph_name, "", None
        if index.tensor(graph_name)[0] is not None:
            return (
                None,
                graph_name,
                f"{graph_name!r} is in the graph but is not a variable (no variable collection "
                f"holds it); bind it as 'tensor {spec_name}' instead",
                None,
            )
        return None, graph_name, f"no variable {graph_name!r} in the graph{renamed}", "variable"
    tensor, why = index.tensor(graph_name)
    if tensor is not None:
        return tensor, graph_name, "", None
    if why is not None:
        return None, graph_name, why + renamed, "tensor"
    return None, graph_name, f"no tensor {graph_name!r} in the graph{renamed}", "tensor"


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    spec: Spec
    start: PathTuple
    start_node: SpecNode
    leaves: list[tuple[PathTuple, SpecNode]]
    #: class path -> where it first occurs, and the node there
    class_paths: dict[str, tuple[PathTuple, ObjectNode | NamedTupleNode]]


def _plan(spec: Spec, subtree: str | None, *, existing_root: bool = False) -> _Plan:
    """The selected node plus everything reachable from it through refs.

    With ``existing_root`` the caller supplies the root object, so its class is
    needed only if it also occurs deeper in the tree.
    """
    start, start_node = spec.resolve(subtree if subtree is not None else ())
    leaves: list[tuple[PathTuple, SpecNode]] = []
    class_paths: dict[str, tuple[PathTuple, ObjectNode | NamedTupleNode]] = {}
    visited: set[int] = set()
    stack: list[tuple[PathTuple, SpecNode]] = [(start, start_node)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Ref):
            stack.append(spec.resolve(node.target))
            continue
        if isinstance(node, (Binding, Sparse)):
            leaves.append((path, node))
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        supplied = existing_root and path == start
        if isinstance(node, (ObjectNode, NamedTupleNode)) and not supplied:
            class_paths.setdefault(node.class_path, (path, node))
        kids = list(children(node))
        stack.extend(((*path, k), v) for k, v in reversed(kids))
    return _Plan(spec, start, start_node, leaves, class_paths)


def _findings(
    plan: _Plan, graph: Any, names: _NameMap
) -> tuple[list[Finding], dict[PathTuple, Any]]:
    index = _GraphIndex(graph)
    findings: list[Finding] = []
    elements: dict[PathTuple, Any] = {}
    suggestions = 0
    for path, node in plan.leaves:
        if isinstance(node, Binding):
            parts: list[tuple[tuple[str, ...], str, str]] = [((), node.kind, node.name)]
        else:
            assert isinstance(node, Sparse)
            parts = [((p,), "tensor", n) for p, n in zip(SPARSE_PARTS, node.names(), strict=True)]
        found: list[Any] = []
        for suffix, kind, spec_name in parts:
            element, graph_name, message, suggest_kind = _lookup(index, kind, spec_name, names)
            closest = None
            if suggest_kind is not None and suggestions < _MAX_SUGGESTIONS:
                suggestions += 1
                closest = index.closest(suggest_kind, graph_name)
                if closest is not None:
                    message += f" (closest: {closest!r})"
            status = (
                "bound" if element is not None else ("missing" if suggest_kind else "wrong_kind")
            )
            findings.append(
                Finding(
                    format_path((*path, *suffix)),
                    kind,
                    spec_name,
                    graph_name,
                    status,
                    message,
                    closest,
                    plan.spec.line_of(path),
                )
            )
            found.append(element)
        if all(e is not None for e in found):
            if isinstance(node, Sparse):
                elements[path] = _tf().SparseTensor(*found)
            else:
                elements[path] = found[0]
    return findings, elements


def check(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    *,
    subtree: str | None = None,
    import_scope: str | None = None,
    scope_map: Mapping[str, str] | None = None,
) -> CheckReport:
    """Look up every graph name of ``spec`` (or of ``subtree``) and report, never raise.

    >>> report = ng.check(spec, graph)  # doctest: +SKIP
    >>> print(report)                   # one line per problem, with its dotted path
    """
    spec = _as_spec(spec)
    graph = _default_graph(graph)
    plan = _plan(spec, subtree)
    findings, _ = _findings(plan, graph, _NameMap(import_scope, scope_map))
    return CheckReport(findings)


def _as_spec(spec: Any) -> Spec:
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, Mapping):
        return Spec.from_dict(dict(spec))
    raise TypeError(
        f"expected an ng.Spec (or its dict form), got {type(spec).__name__}; "
        "use ng.load_spec(path) or ng.Spec.from_yaml(text) to read one"
    )


def _default_graph(graph: Any) -> Any:
    if graph is None:
        return _tf().compat.v1.get_default_graph()
    return graph


# --------------------------------------------------------------------------- building


class _Builder:
    """Creates the objects of one from_graph call; one object per spec path."""

    def __init__(
        self,
        spec: Spec,
        elements: dict[PathTuple, Any],
        classes: dict[str, type | None],
    ) -> None:
        self.spec = spec
        self.elements = elements
        self.classes = classes
        self.objects: dict[PathTuple, Any] = {}
        self.in_progress: set[PathTuple] = set()
        self.lock = threading.RLock()

    def value(self, path: PathTuple, node: SpecNode) -> Any:
        if isinstance(node, Value):
            return node.value
        if isinstance(node, (Binding, Sparse)):
            return self.elements[path]
        if isinstance(node, Skipped):
            return None
        if isinstance(node, Ref):
            path, node = self.spec.resolve(node.target)
        with self.lock:
            if path in self.objects:
                return self.objects[path]
            return self.branch(path, node)

    def branch(self, path: PathTuple, node: SpecNode) -> Any:
        if isinstance(node, ListNode):
            items: list[Any] = []
            self.objects[path] = items
            items.extend(self.value((*path, i), v) for i, v in enumerate(node.items))
            return items
        if isinstance(node, DictNode):
            mapping: dict[str, Any] = {}
            self.objects[path] = mapping
            mapping.update((k, self.value((*path, k), v)) for k, v in node.items.items())
            return mapping
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
        assert isinstance(node, ObjectNode)
        shell = self.shell(path, node)
        self.objects[path] = shell
        self.attach(shell, path, node.fields)
        return shell

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
            generic = Node.__new__(Node)
            generic.__dict__["_nestgraph_class"] = node.class_path
            return generic
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
            obj.__dict__[_PENDING] = _Pending(self, path, rest)

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
        isinstance(obj, _LazyFields)
        and type(obj).__getattr__ is _LazyFields.__getattr__
        and isinstance(getattr(obj, "__dict__", None), dict)
    )


def _class_has(cls: type, name: str) -> bool:
    return any(name in klass.__dict__ for klass in cls.__mro__)


_generic_tuples: dict[tuple[str, tuple[str, ...]], type] = {}


def _generic_namedtuple(class_path: str, fields: tuple[str, ...]) -> type | None:
    """A stand-in namedtuple class remembering ``class_path`` (None if fields can't be names)."""
    key = (class_path, fields)
    if key not in _generic_tuples:
        name = class_path.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        try:
            cls = collections.namedtuple(name, fields, module=__name__)  # type: ignore[misc]
        except ValueError:
            return None
        cls.__nestgraph_class__ = class_path  # type: ignore[attr-defined]
        _generic_tuples[key] = cls
    return _generic_tuples[key]


def _resolve_classes(
    plan: _Plan, allow: classpath.AllowPatterns, generic: bool
) -> dict[str, type | None]:
    classes: dict[str, type | None] = {}
    refused: list[tuple[str, Problem]] = []
    for class_path, (path, _) in plan.class_paths.items():
        try:
            classes[class_path] = classpath.resolve_class(class_path, allow)
        except ClassNotAllowedError as exc:
            if generic:
                classes[class_path] = None
            else:
                problem = Problem(format_path(path), exc.message, plan.spec.line_of(path))
                refused.append((class_path, problem))
    if refused:
        raise ClassNotAllowedError(problems=[p for _, p in refused], class_path=refused[0][0])
    _check_shapes(plan, classes)
    return classes


def _check_shapes(plan: _Plan, classes: dict[str, type | None]) -> None:
    """An object node must not name a tuple class, nor a namedtuple node a plain class."""
    problems = []
    for class_path, (path, node) in plan.class_paths.items():
        cls = classes.get(class_path)
        if cls is None:
            continue
        is_tuple = issubclass(cls, tuple)
        if isinstance(node, NamedTupleNode) and not is_tuple:
            problems.append(Problem(format_path(path), f"{class_path} is not a namedtuple class"))
        if isinstance(node, ObjectNode) and is_tuple:
            problems.append(
                Problem(
                    format_path(path), f"{class_path} is a tuple class; write it as 'namedtuple'"
                )
            )
    if problems:
        raise SpecError(problems=problems)


def _bind(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    *,
    target: Any = None,
    subtree: str | None = None,
    import_scope: str | None = None,
    scope_map: Mapping[str, str] | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
) -> Any:
    spec = _as_spec(spec)
    graph = _default_graph(graph)
    if subtree is not None:
        parse_path(subtree)  # a malformed path is a SpecError before any work
    plan = _plan(spec, subtree, existing_root=target is not None)
    findings, elements = _findings(plan, graph, _NameMap(import_scope, scope_map))
    bad = [f.problem() for f in findings if not f.ok]
    if bad:
        raise BindingError(problems=bad)
    classes = _resolve_classes(plan, classpath.normalize_allow(allow), generic)
    builder = _Builder(spec, elements, classes)
    if target is None:
        return builder.value(plan.start, plan.start_node)
    if not isinstance(plan.start_node, ObjectNode):
        raise SpecError(
            "GraphConvertible.from_graph needs a spec whose root (or subtree) is an object",
            path=format_path(plan.start),
        )
    builder.objects[plan.start] = target
    builder.set_fields(target, plan.start, plan.start_node.fields)
    return target


def from_graph(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    subtree: str | None = None,
    import_scope: str | None = None,
    scope_map: Mapping[str, str] | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
) -> Any:
    """Rebuild the model (or the sub-network at ``subtree``) bound to ``graph``.

    Args:
      spec: an ``ng.Spec`` (or its dict form).
      graph: the ``tf.Graph`` (or ``FuncGraph``) to bind to; the default graph if None.
      subtree: dotted path of the part to rebuild, e.g. ``"towers.3"``.
      import_scope: the prefix given to ``import_meta_graph(import_scope=...)``.
      scope_map: ``{"old/": "new/"}`` name-prefix rewrites, applied before import_scope.
      allow: class-path patterns the caller trusts (``["mypkg.*"]``); lets modules be imported.
      generic: rebuild classes that cannot be used as ``ng.Node`` objects instead of failing.

    Raises:
      BindingError: listing every name that is missing or of the wrong kind.
      ClassNotAllowedError: listing every class path the policy refuses.
      SpecError: a malformed subtree path or an inconsistent spec.
    """
    return _bind(
        spec,
        graph,
        subtree=subtree,
        import_scope=import_scope,
        scope_map=scope_map,
        allow=allow,
        generic=generic,
    )
