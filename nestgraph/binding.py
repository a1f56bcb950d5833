"""from_graph and check: bind a spec to the elements of a ``tf.Graph``.

Plan, validate, then build lazily:

1. **plan**: the selected subtree, plus everything it reaches through refs;
2. **validate**: every graph name is looked up (after ``scope_map`` and
   ``import_scope``), every leaf's elements are checked by its handler, and
   every class path goes through the policy, and its shape is checked; all
   problems of all stages are reported together in one error, each with its
   dotted path, line and hint;
3. **build**: objects are created with ``cls.__new__`` (``__init__`` is never
   called). A ``GraphConvertible`` or generic ``Node`` gets its fields on first
   attribute access (``_objects.Pending``); other classes are filled at once.
   Lists, tuples and dicts are built when their owner is filled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import classpath, registry
from ._builder import Builder
from ._graphindex import GraphIndex, NameMap, default_graph, lookup
from ._objects import materialize
from .errors import (
    BindingAndClassError,
    BindingError,
    ClassNotAllowedError,
    Problem,
    SpecError,
)
from .nodes import (
    Leaf,
    NamedTupleNode,
    ObjectNode,
    Ref,
    SpecNode,
    children,
)
from .paths import PathTuple, format_path, parse_path
from .spec import Spec, leaf_parts

__all__ = [
    "CheckReport",
    "Finding",
    "Status",
    "Validated",
    "bind",
    "check",
    "from_graph",
    "materialize",
    "validate",
]

_MAX_SUGGESTIONS = 50


class Status:
    """What became of one name or class path (``Finding.status``)."""

    BOUND = "bound"
    MISSING = "missing"
    WRONG_KIND = "wrong_kind"
    REFUSED = "refused"  # a class path the policy refuses
    WRONG_SHAPE = "wrong_shape"  # a class that cannot take the node's shape


@dataclass(frozen=True)
class Finding:
    """The outcome of binding one name (or, with ``allow``, one class path)."""

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
        return self.status == Status.BOUND

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
    def problems(self) -> list[Problem]:
        """Every finding that is not bound, as ``Problem`` records (path, message, line)."""
        return [f.problem() for f in self.findings if not f.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        bad = self.problems
        if not bad:
            return f"all {len(self.findings)} bindings found in the graph"
        lines = [f"{len(bad)} of {len(self.findings)} bindings have problems:"]
        lines.extend(f"  {p}" for p in bad)
        return "\n".join(lines)


# --------------------------------------------------------------------------- plan


@dataclass
class _Plan:
    spec: Spec
    start: PathTuple
    start_node: SpecNode
    leaves: list[tuple[PathTuple, Leaf]]
    #: (class path, node type) -> where it first occurs, and the node there: a class
    #: used both as an object and as a namedtuple is checked against both shapes
    class_paths: dict[tuple[str, type], tuple[PathTuple, ObjectNode | NamedTupleNode]]


def _plan(spec: Spec, subtree: str | None, *, existing_root: bool = False) -> _Plan:
    """The selected node plus everything reachable from it through refs.

    With ``existing_root`` the caller supplies the root object, so its class is
    needed only if it also occurs deeper in the tree.
    """
    start, start_node = spec.resolve(subtree if subtree is not None else ())
    leaves: list[tuple[PathTuple, Leaf]] = []
    class_paths: dict[tuple[str, type], tuple[PathTuple, ObjectNode | NamedTupleNode]] = {}
    visited: set[int] = set()
    stack: list[tuple[PathTuple, SpecNode]] = [(start, start_node)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Ref):
            stack.append(spec.resolve(node.target))
            continue
        if isinstance(node, Leaf):
            leaves.append((path, node))
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        supplied = existing_root and path == start
        if isinstance(node, (ObjectNode, NamedTupleNode)) and not supplied:
            class_paths.setdefault((node.class_path, type(node)), (path, node))
        kids = list(children(node))
        stack.extend(((*path, k), v) for k, v in reversed(kids))
    return _Plan(spec, start, start_node, leaves, class_paths)


# --------------------------------------------------------------------------- validate


def _name_findings(
    plan: _Plan, graph: Any, names: NameMap
) -> tuple[list[Finding], dict[PathTuple, tuple[Any, ...]]]:
    """One finding per graph name, and the elements of every fully bound leaf."""
    index = GraphIndex(graph)
    findings: list[Finding] = []
    elements: dict[PathTuple, tuple[Any, ...]] = {}
    suggestions = 0
    for path, leaf in plan.leaves:
        found: list[Any] = []
        line = plan.spec.line_of(path)
        for suffix, kind, spec_name in leaf_parts(leaf):
            result = lookup(index, kind, spec_name, names)
            message, closest = result.message, None
            if result.closest_kind is not None and suggestions < _MAX_SUGGESTIONS:
                suggestions += 1
                closest = index.closest(result.closest_kind, result.graph_name)
                if closest is not None:
                    message += f" (closest: {closest!r})"
            if result.element is not None:
                status = Status.BOUND
            else:
                status = Status.MISSING if result.closest_kind else Status.WRONG_KIND
            where = format_path((*path, *suffix))
            findings.append(
                Finding(where, kind, spec_name, result.graph_name, status, message, closest, line)
            )
            found.append(result.element)
        if any(e is None for e in found):
            continue
        handler = registry.handler_for_kind(leaf.kind)
        problem = (
            handler.check_elements(tuple(found)) if handler and handler.check_elements else None
        )
        if problem is not None:
            findings.append(
                Finding(
                    format_path(path),
                    leaf.kind,
                    leaf.text,
                    leaf.text,
                    Status.WRONG_KIND,
                    f"{leaf.kind} binding: {problem}",
                    None,
                    line,
                )
            )
            continue
        elements[path] = tuple(found)
    return findings, elements


def _class_findings(
    plan: _Plan, allow: classpath.AllowPatterns, generic: bool
) -> tuple[list[Finding], dict[str, type | None]]:
    """One finding per refused class path or wrong shape, and the usable classes."""
    classes: dict[str, type | None] = {}
    findings: list[Finding] = []
    for (class_path, _), (path, node) in plan.class_paths.items():
        where, line = format_path(path), plan.spec.line_of(path)
        if isinstance(node, ObjectNode) and registry.is_rebuilt_as_node(class_path):
            classes[class_path] = None  # a library layer: an ng.Node holding its variables
            continue
        cls: type | None
        if class_path in classes:
            cls = classes[class_path]
        else:
            try:
                cls = classpath.resolve_class(class_path, allow, import_modules=not generic)
            except ClassNotAllowedError as exc:
                classes[class_path] = None
                if not generic:
                    findings.append(
                        Finding(
                            where,
                            "class",
                            class_path,
                            class_path,
                            Status.REFUSED,
                            exc.detail,
                            None,
                            line,
                        )
                    )
                continue
        if cls is None:
            continue
        classes[class_path] = cls
        is_tuple = issubclass(cls, tuple)
        wrong = None
        if isinstance(node, NamedTupleNode) and not is_tuple:
            wrong = f"{class_path} is not a namedtuple class"
        elif isinstance(node, ObjectNode) and is_tuple:
            wrong = f"{class_path} is a tuple class; write it as 'namedtuple'"
        if wrong is not None:
            findings.append(
                Finding(
                    where, "class", class_path, class_path, Status.WRONG_SHAPE, wrong, None, line
                )
            )
    return findings, classes


def _raise_for(findings: Iterable[Finding]) -> None:
    bad = [f for f in findings if not f.ok]
    if not bad:
        return
    problems = [f.problem() for f in bad]
    refused = [f for f in bad if f.status == Status.REFUSED]
    names = [f for f in bad if f.status in (Status.MISSING, Status.WRONG_KIND)]
    if refused and names:
        raise BindingAndClassError(problems=problems, class_path=refused[0].name)
    if refused:
        raise ClassNotAllowedError(problems=problems, class_path=refused[0].name)
    if names:
        raise BindingError(problems=problems)
    raise SpecError(problems=problems)


def check(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    *,
    subtree: str | None = None,
    import_scope: str | None = None,
    scope_map: Mapping[str, str] | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
) -> CheckReport:
    """Look up every graph name of ``spec`` (or of ``subtree``) and report, never raise.

    With ``allow`` (``allow=()`` for the default policy), class paths are
    checked too, as ``from_graph`` would with the same ``allow``/``generic``.

    >>> import tensorflow as tf
    >>> graph = tf.Graph()
    >>> with graph.as_default():
    ...     x = tf.compat.v1.placeholder(tf.float32, name="x")
    >>> spec = Spec.from_yaml("nestgraph: 1\\nroot: {dict: {x: tensor x:0, y: tensor y:0}}")
    >>> print(check(spec, graph))
    1 of 2 bindings have problems:
      y (line 2): no tensor 'y:0' in the graph (closest: 'x:0')
    """
    spec = _as_spec(spec)
    plan = _plan(spec, subtree)
    findings, _ = _name_findings(plan, default_graph(graph), NameMap(import_scope, scope_map))
    if allow is not None:
        findings.extend(_class_findings(plan, classpath.normalize_allow(allow), generic)[0])
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


@dataclass
class Validated:
    """A spec checked against a graph (every name, element and class), ready to build.

    ``validate`` does all the work that can fail on the spec; ``build`` only makes
    objects, so a caller (``ng.load``) can validate before it opens a session and
    build with that session afterwards.
    """

    spec: Spec
    graph: Any
    plan: _Plan
    elements: dict[PathTuple, tuple[Any, ...]]
    classes: dict[str, type | None]
    allow: classpath.AllowPolicy
    generic: bool

    def build(self, session: Any = None, target: Any = None, members: Any = None) -> Any:
        """The rebuilt model (or sub-network); into ``target`` when one is given.

        ``members`` are a bundle's verified extra members (``arrays/<n>.npy``).
        """
        context = registry.RebuildContext(
            graph=self.graph,
            session=session,
            allow=self.allow,
            generic=self.generic,
            members=members,
        )
        builder = Builder(self.spec, self.elements, self.classes, context)
        plan = self.plan
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


def validate(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    *,
    subtree: str | None = None,
    import_scope: str | None = None,
    scope_map: Mapping[str, str] | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
    existing_root: bool = False,
) -> Validated:
    """Check ``spec`` against ``graph`` as ``from_graph`` does, raising one error for all."""
    spec = _as_spec(spec)
    graph = default_graph(graph)
    if subtree is not None:
        parse_path(subtree)  # a malformed path is a SpecError before any work
    patterns = classpath.normalize_allow(allow)
    plan = _plan(spec, subtree, existing_root=existing_root)
    findings, elements = _name_findings(plan, graph, NameMap(import_scope, scope_map))
    class_findings, classes = _class_findings(plan, patterns, generic)
    _raise_for([*findings, *class_findings])
    return Validated(spec, graph, plan, elements, classes, patterns, generic)


def bind(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    *,
    target: Any = None,
    session: Any = None,
    **options: Any,
) -> Any:
    """``from_graph``, optionally into an existing ``target`` object (its root).

    ``options`` are ``validate``'s: ``subtree``, ``import_scope``, ``scope_map``,
    ``allow``, ``generic``.
    """
    checked = validate(spec, graph, existing_root=target is not None, **options)
    return checked.build(session, target)


def from_graph(
    spec: Spec | Mapping[str, Any],
    graph: Any = None,
    subtree: str | None = None,
    import_scope: str | None = None,
    scope_map: Mapping[str, str] | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
    *,
    session: Any = None,
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
      session: the session that leaf handlers which need one (sessions, savers) bind to.

    Raises (one error listing every problem of every stage):
      BindingError: names that are missing or of the wrong kind.
      ClassNotAllowedError: class paths the policy refuses (both at once: an error
        that is a ``BindingError`` and a ``ClassNotAllowedError``).
      SpecError: a malformed subtree path, or a class that cannot take its node's shape.
    """
    return bind(
        spec,
        graph,
        subtree=subtree,
        import_scope=import_scope,
        scope_map=scope_map,
        allow=allow,
        generic=generic,
        session=session,
    )
