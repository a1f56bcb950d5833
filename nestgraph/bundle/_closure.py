"""The closure walk behind ``ng.scan``: which listed ops each graph node can reach.

Reads a ``MetaGraphDef`` proto only. Every listed op found (in the graph or in
a function body) gets one bit; ``Graph.reach`` gives each node the mask of the
bits in its closure, so the bound fields' masks say which ops they reach.
Iterative throughout: a hostile graph may be deep, cyclic or recursive.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from nestgraph.bundle import _optable

__all__ = ["MAX_FINDINGS", "OVERFLOW", "Graph", "bits", "masks", "node_name"]

_UNKNOWN = _optable.Danger(
    "unknown", "an op type this TensorFlow does not know: what it does cannot be checked"
)
_MISSING_FUNCTION = _optable.Danger(
    "unknown", "calls a function that is not in the bundle's function library"
)

# Listed ops tracked one by one; the rest are reported together (see Graph._add).
MAX_FINDINGS = 1000
OVERFLOW = _optable.Danger(
    "many", f"one of the listed ops beyond the first {MAX_FINDINGS}, reported together"
)


class Graph:
    """The nodes, function library and listed ops of one ``MetaGraphDef``."""

    def __init__(self, meta_graph: Any) -> None:
        graph_def = meta_graph.graph_def
        self.nodes: dict[str, Any] = {node.name: node for node in graph_def.node}
        self.library = {f.signature.name: f for f in graph_def.library.function}
        self.gradients = {g.function_name: g.gradient_func for g in graph_def.library.gradient}
        self.variable_ops = _variable_ops(meta_graph)
        # (function or None, NodeDef, Danger), one per listed op; the bit of a
        # finding in every reach mask is its index here.
        self.findings: list[tuple[str | None, Any, _optable.Danger]] = []
        self.overflow = 0
        self._function_bits = self._judge_functions()
        self._own: dict[str, int] = {}
        for node in graph_def.node:
            self._own[node.name] = self._judge(None, node, self._graph_lookup, self._function_bits)

    def _graph_lookup(self, ref: str) -> Any:
        return self.nodes.get(node_name(ref))

    def _judge(
        self, function: str | None, node: Any, lookup: _optable.Lookup, function_bits: Any
    ) -> int:
        """The reach bits of ``node`` itself: its own listing and the functions it calls."""
        bits = 0
        danger = _optable.classify(node, lookup)
        if danger is None and node.op not in self.library and not _registered(node.op):
            danger = _UNKNOWN
        if danger is not None:
            bits |= self._add(function, node, danger)
        for called in _called_functions(node, self.library):
            if called in self.library:
                bits |= function_bits(called)
            elif not _registered(called):
                bits |= self._add(function, node, _MISSING_FUNCTION)
        return bits

    def _add(self, function: str | None, node: Any, danger: _optable.Danger) -> int:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append((function, node, danger))
            return 1 << (len(self.findings) - 1)
        # Past the cap every listed op shares one bit, so a hostile graph of listed
        # ops cannot make the masks (one per node) quadratic in memory.
        self.overflow += 1
        if len(self.findings) == MAX_FINDINGS:
            self.findings.append((function, node, OVERFLOW))
        return 1 << MAX_FINDINGS

    def _judge_functions(self) -> Any:
        """Judge every body once; return ``name -> bits of everything a call to it reaches``."""
        body_bits: dict[str, int] = {}
        calls: dict[str, set[str]] = {}
        for name, function in self.library.items():
            local = {node.name: node for node in function.node_def}
            calls[name] = set()

            def lookup(ref: str, local: dict[str, Any] = local) -> Any:
                return local.get(node_name(ref.split(":", 1)[0]))

            def note_call(called: str, callers: set[str] = calls[name]) -> int:
                callers.add(called)
                return 0

            bits = 0
            for node in function.node_def:
                bits |= self._judge(name, node, lookup, note_call)
            body_bits[name] = bits
            if name in self.gradients:
                calls[name].add(self.gradients[name])
        call_edges = {
            name: sorted(c for c in called if c in self.library) for name, called in calls.items()
        }
        reach = masks(self.library, call_edges, body_bits)

        def function_bits(start: str) -> int:
            return reach.get(start, 0)

        return function_bits

    def reach(self, seeds: Sequence[str]) -> dict[str, int]:
        """``node -> bits of every finding in its closure``, for the nodes ``seeds`` reach."""
        edges = {name: _input_nodes(node, self.nodes) for name, node in self.nodes.items()}
        return masks(seeds, edges, self._own)


def masks(
    seeds: Iterable[str], edges: Mapping[str, Sequence[str]], own: Mapping[str, int]
) -> dict[str, int]:
    """``vertex -> OR of own[v] over every v reachable from it`` for the vertices ``seeds`` reach.

    Iterative Tarjan: a hostile graph may be deep or hold cycles (a v1 while
    loop is one, recursive functions another), and each strongly connected
    component shares one mask, so the cost is linear in the edges walked.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    reach: dict[str, int] = {}
    for seed in seeds:
        if seed in index:
            continue
        index[seed] = low[seed] = len(index)
        stack.append(seed)
        on_stack.add(seed)
        work: list[tuple[str, Iterator[str]]] = [(seed, iter(edges.get(seed, ())))]
        while work:
            vertex, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                    break
                if child in on_stack:
                    low[vertex] = min(low[vertex], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[vertex])
                if low[vertex] == index[vertex]:
                    _close_component(vertex, stack, on_stack, edges, own, reach)
    return reach


def _close_component(
    root: str,
    stack: list[str],
    on_stack: set[str],
    edges: Mapping[str, Sequence[str]],
    own: Mapping[str, int],
    reach: dict[str, int],
) -> None:
    """Pop ``root``'s component off ``stack``; its members share one mask."""
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            break
    bits = 0
    for member in component:
        bits |= own.get(member, 0)
        for child in edges.get(member, ()):
            bits |= reach.get(child, 0)
    for member in component:
        reach[member] = bits


def _variable_ops(meta_graph: Any) -> dict[str, list[str]]:
    """``variable name -> ops a user may run on it`` (its initializer), from the collections."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import variable_pb2

    ops: dict[str, list[str]] = {}
    for collection in meta_graph.collection_def.values():
        if not collection.HasField("bytes_list"):
            continue
        for blob in collection.bytes_list.value:
            variable = variable_pb2.VariableDef()
            try:
                variable.ParseFromString(blob)
            except DecodeError:  # a collection of another proto type
                continue
            if variable.variable_name and variable.initializer_name:
                ops.setdefault(variable.variable_name, []).append(
                    node_name(variable.initializer_name)
                )
    return ops


def _called_functions(node: Any, library: Any) -> Iterator[str]:
    """Every function name ``node`` can call: its op type, or any func-valued attribute."""
    if node.op in library:
        yield node.op
    todo = list(node.attr.values())
    while todo:
        value = todo.pop()
        kind = value.WhichOneof("value")
        if kind == "func":
            yield value.func.name
            todo.extend(value.func.attr.values())
        elif kind == "list":
            for func in value.list.func:
                yield func.name
                todo.extend(func.attr.values())


def _input_nodes(node: Any, nodes: dict[str, Any]) -> list[str]:
    found = []
    for ref in node.input:
        name = node_name(ref)
        if name in nodes:
            found.append(name)
    return found


def node_name(ref: str) -> str:
    if ref.startswith("^"):
        ref = ref[1:]
    head, sep, tail = ref.rpartition(":")
    return head if sep and tail.isdigit() else ref


@functools.lru_cache(maxsize=4096)  # bounded: hostile graphs bring any names
def _registered(op_type: str) -> bool:
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_type) is not None


def bits(mask: int) -> Iterable[int]:
    index = 0
    while mask:
        if mask & 1:
            yield index
        mask >>= 1
        index += 1
