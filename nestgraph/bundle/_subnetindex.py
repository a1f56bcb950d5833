"""The sub-network index a bundle is written with: what ``load(subtree=...)`` needs.

A sub-network load without an index parses the whole spec and the whole
``graph.pb`` and indexes every node and collection entry to prune them: its
cost follows the model, not the sub-network. At save time the pruning is done
once for every container of the spec (breadth first, within a size budget),
and each container gets one *slice* of ``subnets.bin``:

- the part of the spec a load of it reads (its subtree, what its refs reach,
  and the path down to them; list siblings are put back as placeholders on
  load), in dict form, with the ``spec.yaml`` line of every node;
- the pruned ``MetaGraphDef`` without its nodes (collections, signatures,
  versions: exactly what ``_metagraph.prune_meta_graph`` keeps), and
- the byte ranges of ``graph.pb`` holding the kept ``NodeDef`` records (and
  the function library), with their SHA-256.

``subnets.json`` lists the slices by dotted path, each with its SHA-256, and
names the SHA-256 of the ``graph.pb`` and ``spec.yaml`` it was made from, so a
bundle whose graph or spec was replaced later falls back to the full path.
The reading side is ``_subnets``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph._yamlio import load_yaml
from nestgraph.bundle import _metagraph
from nestgraph.bundle._container import SUBNET_DATA, SUBNETS
from nestgraph.bundle._pruner import Pruner
from nestgraph.bundle._tensorbundle import _varint
from nestgraph.nodes import (
    DictNode,
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    SpecNode,
    TupleNode,
    children,
    is_branch,
    iter_nodes,
)
from nestgraph.paths import PathTuple, format_path
from nestgraph.spec import Spec, leaf_parts

__all__ = ["SLICE_HEADER", "SUBNETS", "SUBNETS_FORMAT", "SUBNET_DATA", "build_index"]

SUBNETS_FORMAT = "nestgraph-subnets"
#: A slice: the lengths of its spec JSON, its metadata JSON and its pruned MetaGraphDef.
SLICE_HEADER = struct.Struct("<III")

# The index may hold this many bytes per byte of graph and spec (plus a floor):
# containers are indexed breadth first until it is full, the rest load the full way.
_BUDGET_RATIO = 2
_BUDGET_FLOOR = 4 << 20


def build_index(
    meta_graph: meta_graph_pb2.MetaGraphDef, graph: bytes, spec: Spec, spec_text: bytes
) -> dict[str, bytes]:
    """``{member name: bytes}`` of the index of ``spec``'s containers, or ``{}``.

    ``graph`` is ``meta_graph`` serialized as it is written (deterministically),
    ``spec_text`` the ``spec.yaml`` bytes written for ``spec``.
    """
    spans = _graph_spans(graph)
    if spans is None or len(spans.nodes) != len(meta_graph.graph_def.node):
        return {}
    tree, lines = load_yaml(spec_text)
    with _metagraph.gc_paused():
        pruner = Pruner(meta_graph)
        budget = _BUDGET_FLOOR + _BUDGET_RATIO * (len(graph) + len(spec_text))
        closures = _Closures(spec, pruner)
        entries: dict[str, list[Any]] = {}
        data = bytearray()
        for path, node in _containers(spec.root):
            kept = closures.pop(path, node)
            piece = _slice(spec, tree, lines, path, node, kept, pruner, graph, spans)
            if len(data) + len(piece) > budget:
                break
            entries[format_path(path)] = [len(data), len(piece), hashlib.sha256(piece).hexdigest()]
            data.extend(piece)
    if not entries:
        return {}
    directory = {
        "format": SUBNETS_FORMAT,
        "version": 1,
        "graph_sha256": hashlib.sha256(graph).hexdigest(),
        "spec_sha256": hashlib.sha256(spec_text).hexdigest(),
        "entries": entries,
    }
    return {
        SUBNETS: json.dumps(directory, separators=(",", ":")).encode("utf-8"),
        SUBNET_DATA: bytes(data),
    }


def _containers(root: SpecNode) -> Iterator[tuple[PathTuple, SpecNode]]:
    """Every branch below the root, breadth first: the sub-networks worth indexing first."""
    level: list[tuple[PathTuple, SpecNode]] = [((), root)]
    while level:
        following: list[tuple[PathTuple, SpecNode]] = []
        for path, node in level:
            if path:
                yield path, node
            following.extend(
                ((*path, key), child) for key, child in children(node) if is_branch(child)
            )
        level = following


# --------------------------------------------------------------------------- one slice


def _slice(
    spec: Spec,
    tree: Any,
    lines: Mapping[tuple[Any, ...], int],
    path: PathTuple,
    node: SpecNode,
    kept_names: set[str],
    pruner: Pruner,
    graph: bytes,
    spans: _Spans,
) -> bytes:
    needed = _needed(spec, path, node)
    ypaths = [_ypath(spec.root, p) for p, _ in needed]
    expand: list[list[Any]] = []
    doc = _take(tree, (), _trie(ypaths), expand, members=False)
    doc_lines = [[list(y), line] for y, line in _doc_lines(doc, (), expand, lines)]
    # The op list of meta_info_def is the same for every slice: read from graph.pb instead.
    kept, skeleton = pruner.skeleton(kept_names, head=False)
    head = list(spans.head) if spans.head else None
    ranges = _merged([spans.nodes[i] for i in kept] + ([spans.library] if spans.library else []))
    graph_digest = hashlib.sha256()
    for offset, size in ([head] if head else []) + ranges:
        graph_digest.update(graph[offset : offset + size])
    meta = {
        "lines": doc_lines,
        "expand": expand,
        "head": head,
        "graph": ranges,
        "graph_sha256": graph_digest.hexdigest(),
    }
    spec_json = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    meta_json = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    skeleton_bytes = skeleton.SerializeToString(deterministic=True)
    header = SLICE_HEADER.pack(len(spec_json), len(meta_json), len(skeleton_bytes))
    return header + spec_json + meta_json + skeleton_bytes


class _Closures:
    """The graph closure of each container, from its parts' closures where it can be.

    A container's closure is the union of its child containers' and the closure
    of its own leaves; a subtree holding a ref (which may point anywhere, its
    own ancestors included) is walked whole instead. Each closure is handed
    out once (``pop``), so the sets of emitted containers are freed.
    """

    def __init__(self, spec: Spec, pruner: Pruner) -> None:
        self.spec = spec
        self.pruner = pruner
        self.memo: dict[PathTuple, set[str] | None] = {}  # None: the subtree holds a ref

    def pop(self, path: PathTuple, node: SpecNode) -> set[str]:
        found = self._of(path, node)
        self.memo.pop(path, None)
        if found is not None:
            return found
        # What spec.subtree(path).bindings() names (it copies ref targets in), without
        # re-rooting: a spec read from YAML would copy its whole line table each time.
        seeds = [
            name
            for _, start in _needed(self.spec, path, node)
            for _, child in iter_nodes(start)
            if isinstance(child, Leaf)
            for _, _, name in leaf_parts(child)
        ]
        return self.pruner.kept(seeds)

    def _of(self, path: PathTuple, node: SpecNode) -> set[str] | None:
        if path in self.memo:
            return self.memo[path]
        known: set[str] = set()
        seeds: list[str] = []
        result: set[str] | None = None
        for key, child in children(node):
            if isinstance(child, Ref):
                break
            if isinstance(child, Leaf):
                seeds.extend(name for _, _, name in leaf_parts(child))
            elif is_branch(child):
                part = self._of((*path, key), child)
                if part is None:
                    break
                known |= part
        else:
            result = self.pruner.kept(seeds, known)
        self.memo[path] = result
        return result


def _needed(spec: Spec, path: PathTuple, node: SpecNode) -> list[tuple[PathTuple, SpecNode]]:
    """``(path, node)`` and every object its refs reach (transitively), outermost first."""
    needed = [(path, node)]
    todo = [node]
    while todo:
        for _, child in iter_nodes(todo.pop()):
            if not isinstance(child, Ref):
                continue
            target, target_node = spec.resolve(child.target)
            if not any(target[: len(p)] == p for p, _ in needed):
                needed.append((target, target_node))
                todo.append(target_node)
    return needed


def _ypath(root: SpecNode, path: PathTuple) -> tuple[Any, ...]:
    """Where the node at spec ``path`` is in the dict form (``fields``, ``dict``, ``tuple``)."""
    ypath: tuple[Any, ...] = () if isinstance(root, ObjectNode) else ("root",)
    node = root
    for key in path:
        if isinstance(node, (ObjectNode, NamedTupleNode)):
            ypath, node = (*ypath, "fields", key), node.fields[str(key)]
        elif isinstance(node, DictNode):
            ypath, node = (*ypath, "dict", key), node.items[str(key)]
        elif isinstance(node, TupleNode):
            ypath, node = (*ypath, "tuple", key), node.items[int(key)]
        else:
            assert isinstance(node, ListNode)
            ypath, node = (*ypath, key), node.items[int(key)]
    return ypath


_WHOLE: dict[Any, Any] = {}


def _trie(ypaths: Iterable[tuple[Any, ...]]) -> dict[Any, Any]:
    """The ypaths as a trie; ``_WHOLE`` marks a subtree taken whole."""
    trie: dict[Any, Any] = {}
    for ypath in sorted(ypaths, key=len):
        node = trie
        for key in ypath:
            if node is _WHOLE:
                break
            node = node.setdefault(key, {})
        else:
            if node is not _WHOLE:
                parent = trie
                for key in ypath[:-1]:
                    parent = parent[key]
                if ypath:
                    parent[ypath[-1]] = _WHOLE
                else:
                    return _WHOLE
    return trie


def _take(
    value: Any, ypath: tuple[Any, ...], trie: dict[Any, Any], expand: list[Any], *, members: bool
) -> Any:
    """The parts of the dict form ``value`` on the trie; lists keep only the items taken.

    ``members``: ``value`` maps field names or dict keys to nodes (the value of a
    ``fields`` or ``dict`` key) rather than being one node's own mapping.
    """
    if trie is _WHOLE:
        return value
    if isinstance(value, list):
        indices = sorted(trie)
        expand.append([list(ypath), len(value), indices])
        return [_take(value[i], (*ypath, i), trie[i], expand, members=False) for i in indices]
    assert isinstance(value, dict)
    out = {}
    for key, item in value.items():
        if key in trie:
            inner = not members and key in ("fields", "dict")
            out[key] = _take(item, (*ypath, key), trie[key], expand, members=inner)
        elif not members and not isinstance(item, (dict, list)):
            out[key] = item  # a node's header: the nestgraph version, class, namedtuple
    return out


def _doc_lines(
    doc: Any, ypath: tuple[Any, ...], expand: list[Any], lines: Mapping[tuple[Any, ...], int]
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """``(ypath, line)`` of every node of the taken document, in the full document's terms."""
    positions = {tuple(y): indices for y, _, indices in expand}
    stack = [(ypath, doc)]
    while stack:
        here, value = stack.pop()
        line = lines.get(here)
        if line is not None:
            yield here, line
        if isinstance(value, dict):
            stack.extend(((*here, k), v) for k, v in value.items())
        elif isinstance(value, list):
            indices = positions.get(here, range(len(value)))
            stack.extend(((*here, i), v) for i, v in zip(indices, value, strict=True))


def _merged(spans: list[tuple[int, int]]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for offset, size in sorted(spans):
        if ranges and ranges[-1][0] + ranges[-1][1] == offset:
            ranges[-1][1] += size
        else:
            ranges.append([offset, size])
    return ranges


# --------------------------------------------------------------------------- wire format


def _skip(data: bytes, pos: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(data, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 2:
        size, pos = _varint(data, pos)
        return pos + size
    if wire_type == 5:
        return pos + 4
    raise ValueError(f"unexpected wire type {wire_type}")


_META_INFO_FIELD = 1  # MetaGraphDef.meta_info_def
_GRAPH_DEF_FIELD = 2  # MetaGraphDef.graph_def
_NODE_FIELD = 1  # GraphDef.node
_LIBRARY_FIELD = 2  # GraphDef.library


@dataclasses.dataclass(frozen=True)
class _Spans:
    """Where records lie in a serialized MetaGraphDef: ``(offset, size)``, tag included."""

    nodes: list[tuple[int, int]]  # each NodeDef record, inside graph_def
    library: tuple[int, int] | None  # the function library record, inside graph_def
    head: tuple[int, int] | None  # the meta_info_def record, at the top level


def _graph_spans(graph: bytes) -> _Spans | None:
    """Where each ``NodeDef``, the library and ``meta_info_def`` lie in ``graph``.

    None when the graph is not laid out as one record of each.
    """
    pos, found, head = 0, None, None
    while pos < len(graph):
        record = pos
        tag, body = _varint(graph, pos)
        if tag == (_GRAPH_DEF_FIELD << 3 | 2):
            if found is not None:
                return None
            size, start = _varint(graph, body)
            found = (start, start + size)
            pos = start + size
        else:
            pos = _skip(graph, body, tag & 7)
            if tag == (_META_INFO_FIELD << 3 | 2):
                if head is not None:
                    return None
                head = (record, pos - record)
    if found is None:
        return _Spans([], None, head)
    nodes, library = [], None
    pos, end = found
    while pos < end:
        record = pos
        tag, pos = _varint(graph, pos)
        pos = _skip(graph, pos, tag & 7)
        if tag == (_NODE_FIELD << 3 | 2):
            nodes.append((record, pos - record))
        elif tag == (_LIBRARY_FIELD << 3 | 2):
            if library is not None:
                return None
            library = (record, pos - record)
    return _Spans(nodes, library, head)
