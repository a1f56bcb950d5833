"""Prune a MetaGraphDef to the part of the graph that a few nodes need.

A sub-network load keeps the transitive inputs (data and ``^control``) of the
ops its spec binds, and whatever TensorFlow needs to rebuild the Python side of
what survives:

- for every kept variable, the ops its ``VariableDef`` names (initializer,
  snapshot, initial value) and their inputs, so the collection entry can be
  turned back into a ``tf.Variable``;
- every op a kept op is colocated with (``_class: loc:@name``), because the
  importer refuses a colocation with an op that is not in the graph;
- all of a ``tf.cond`` / ``tf.while_loop`` context as soon as one of its ops is
  kept, because the context object is rebuilt from its full list of values.

A seed that is no node but the ``full_name`` of a partitioned variable (a
``partitioned emb`` binding; the nodes are ``emb/part_0`` ...) stands for all
of its parts, found by their ``VariableDef``'s ``save_slice_info_def``.

Collections keep only the entries whose nodes all survive; the ``saver_def``
and the ``savers`` collection are dropped (the save ops are not kept).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf.message import DecodeError, Message
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph.errors import BundleError

try:  # Private, but present in every TensorFlow since 1.0.
    from tensorflow.python.framework.ops import get_collection_proto_type as _proto_type_of
except ImportError:  # pragma: no cover - fallback for a future TensorFlow
    _proto_type_of = None

__all__ = [
    "collection_proto_type",
    "gc_paused",
    "node_name",
    "node_refs",
    "prune_meta_graph",
    "replace_graph_def",
    "required_nodes",
    "without_saver",
]

# Collections whose entries describe a control-flow context: kept whole or not at all.
_CONTEXT_COLLECTIONS = frozenset({"cond_context", "while_context"})
# Collections that describe savers of the full graph; their ops are never kept.
_DROPPED_COLLECTIONS = frozenset({"savers"})
_COLOCATION_PREFIX = b"loc:@"


def node_name(ref: str) -> str:
    """The node a tensor name, op name or control input refers to.

    >>> node_name("^train/Adam"), node_name("tower_0/Relu:0"), node_name("w")
    ('train/Adam', 'tower_0/Relu', 'w')
    """
    if ref.startswith("^"):
        ref = ref[1:]
    head, sep, tail = ref.rpartition(":")
    return head if sep and tail.isdigit() else ref


def collection_proto_type(key: str) -> type[Message] | None:
    """The protocol buffer a ``bytes_list`` collection holds, if TensorFlow registered one."""
    if _proto_type_of is None:  # pragma: no cover
        return None
    proto_type = _proto_type_of(key)
    return proto_type if isinstance(proto_type, type) else None


def _strings(message: Message) -> Iterator[str]:
    """Every string anywhere in ``message``: the candidates for node references."""
    for field, value in message.ListFields():
        if field.type == field.TYPE_STRING:
            if isinstance(value, str):
                yield value
            else:
                yield from value
        elif field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if isinstance(key, str):
                        yield key
                    if isinstance(item, str):
                        yield item
                    elif isinstance(item, Message):
                        yield from _strings(item)
            elif isinstance(value, Message):
                yield from _strings(value)
            else:
                for item in value:
                    yield from _strings(item)


def node_refs(message: Message, nodes: Any) -> list[str]:
    """The nodes of ``nodes`` (a container of node names) that ``message`` names."""
    refs = []
    for text in _strings(message):
        name = node_name(text)
        if name in nodes:
            refs.append(name)
    return refs


def _variable_def_refs(proto: Any, nodes: Any) -> list[str]:
    """:func:`node_refs` of a ``VariableDef``, from its known string fields.

    Variables are most of a model's collection entries; reading their four
    names directly is several times faster than the generic walk.
    """
    texts = [
        proto.variable_name,
        proto.initializer_name,
        proto.snapshot_name,
        proto.initial_value_name,
    ]
    if proto.HasField("save_slice_info_def"):
        texts.append(proto.save_slice_info_def.full_name)
    refs = []
    for text in texts:
        name = node_name(text)
        if text and name in nodes:
            refs.append(name)
    return refs


class _CollectionIndex:
    """The node references of every proto-typed collection entry, parsed once."""

    def __init__(self, meta_graph: meta_graph_pb2.MetaGraphDef, nodes: Any) -> None:
        # key -> one list of node refs per entry (None: the entry is not a known proto)
        self.entry_refs: dict[str, list[list[str]]] = {}
        # variable op -> the ops its VariableDef names
        self.variable_extras: dict[str, list[str]] = {}
        # node -> indices into self.contexts of the control-flow contexts it belongs to
        self.context_of: dict[str, list[int]] = {}
        self.contexts: list[list[str]] = []
        # partitioned variable full name -> its parts' variable ops
        self.partition_parts: dict[str, list[str]] = {}
        for key, collection in meta_graph.collection_def.items():
            if collection.WhichOneof("kind") != "bytes_list" or key in _DROPPED_COLLECTIONS:
                continue
            proto_type = collection_proto_type(key)
            if proto_type is None:
                continue
            refs_per_entry = []
            find_refs = _variable_def_refs if proto_type is variable_pb2.VariableDef else node_refs
            for raw in collection.bytes_list.value:
                proto = proto_type()
                try:
                    proto.ParseFromString(raw)
                except DecodeError:
                    raise BundleError(
                        f"corrupt bundle: graph.pb: collection {key!r} holds an entry that "
                        f"is not a {proto_type.__name__}"
                    ) from None
                refs = find_refs(proto, nodes)
                refs_per_entry.append(refs)
                if key in _CONTEXT_COLLECTIONS:
                    for ref in refs:
                        self.context_of.setdefault(ref, []).append(len(self.contexts))
                    self.contexts.append(refs)
                variable_name = getattr(proto, "variable_name", None)
                if isinstance(variable_name, str) and variable_name:
                    self.variable_extras.setdefault(node_name(variable_name), []).extend(refs)
                    full_name = _partition_of(proto)
                    if full_name:
                        parts = self.partition_parts.setdefault(full_name, [])
                        parts.append(node_name(variable_name))
            self.entry_refs[key] = refs_per_entry


def _partition_of(proto: Message) -> str:
    """The full name of the partitioned variable a ``VariableDef`` is a part of, or ''."""
    fields = proto.DESCRIPTOR.fields_by_name
    if "save_slice_info_def" not in fields or not proto.HasField("save_slice_info_def"):
        return ""
    return str(proto.save_slice_info_def.full_name)


def _targets(node: Any, index: _CollectionIndex) -> list[str]:
    """What a kept node keeps: its inputs, its colocations, the ops its VariableDef names."""
    targets = [node_name(ref) for ref in node.input]
    if "_class" in node.attr:
        targets.extend(
            target[len(_COLOCATION_PREFIX) :].decode("utf-8")
            for target in node.attr["_class"].list.s
            if target.startswith(_COLOCATION_PREFIX)
        )
    targets.extend(index.variable_extras.get(node.name, ()))
    return targets


def _closure(
    nodes: dict[str, Any],
    seeds: Iterable[str],
    index: _CollectionIndex,
    known: Iterable[str] = (),
    cache: dict[str, list[str]] | None = None,
) -> set[str]:
    """Every node ``seeds`` need; ``known`` is a closure already found, ``cache`` keeps
    each node's ``_targets`` for later calls (``_pruner``)."""
    kept: set[str] = set(known)
    contexts_done: set[int] = set()
    # A reference to a node that is not in the graph is skipped here and left
    # for the importer (or binding validation) to report.
    stack = [node_name(seed) for seed in seeds]
    while stack:
        name = stack.pop()
        if name in kept:
            continue
        if name not in nodes:
            stack.extend(index.partition_parts.get(name, ()))
            continue
        kept.add(name)
        targets = cache.get(name) if cache is not None else None
        if targets is None:
            targets = _targets(nodes[name], index)
            if cache is not None:
                cache[name] = targets
        stack.extend(targets)
        for context in index.context_of.get(name, ()):
            if context not in contexts_done:
                contexts_done.add(context)
                stack.extend(index.contexts[context])
    return kept


def required_nodes(meta_graph: meta_graph_pb2.MetaGraphDef, seeds: Iterable[str]) -> set[str]:
    """The node names :func:`prune_meta_graph` keeps for ``seeds``."""
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    return _closure(nodes, seeds, _CollectionIndex(meta_graph, nodes))


def prune_meta_graph(
    meta_graph: meta_graph_pb2.MetaGraphDef, seeds: Iterable[str]
) -> meta_graph_pb2.MetaGraphDef:
    """A new MetaGraphDef holding only what ``seeds`` need (see the module docstring).

    Args:
      meta_graph: the full MetaGraphDef; it is not modified.
      seeds: tensor names, op names or control inputs (``"^op"``) to keep.
        Names that are not in the graph are ignored; binding validation reports them.

    Returns:
      A MetaGraphDef without ``saver_def``, ready for ``import_meta_graph``.
    """
    with gc_paused():
        nodes = {node.name: node for node in meta_graph.graph_def.node}
        index = _CollectionIndex(meta_graph, nodes)
        kept = _closure(nodes, seeds, index)
        # Original order: the importer does not need it, but diffs and tests read better.
        kept_nodes = [node for name, node in nodes.items() if name in kept]
        return _subset(meta_graph, index, nodes, kept, kept_nodes, meta_graph.graph_def)


def without_saver(meta_graph: meta_graph_pb2.MetaGraphDef) -> meta_graph_pb2.MetaGraphDef:
    """``meta_graph`` without the save and restore ops of its ``saver_def``.

    A load restores with ops of its own, so the saver's ops would only be
    imported to sit unused: about one op per variable, 15% of the benchmark
    model's graph (a full load of the 40-tower model: 4.21 s without them,
    4.78 s with them, medians of 3 in one process). Dropped are the ops inside
    the saver's name scope that its restore, save and file name reach, unless
    another op needs them.
    """
    if not meta_graph.HasField("saver_def"):
        return meta_graph
    saver_def = meta_graph.saver_def
    scope = saver_def.restore_op_name.rpartition("/")[0]
    if not scope:
        return meta_graph
    scope += "/"
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    roots = (saver_def.restore_op_name, saver_def.save_tensor_name, saver_def.filename_tensor_name)
    drop: set[str] = set()
    stack = [node_name(root) for root in roots]
    while stack:
        name = stack.pop()
        if name in drop or name not in nodes or not name.startswith(scope):
            continue
        drop.add(name)
        stack.extend(node_name(ref) for ref in nodes[name].input)
    # Give back whatever a kept op still reads or is colocated with.
    stack = [
        node_name(ref) for name, node in nodes.items() if name not in drop for ref in node.input
    ]
    while stack:
        name = stack.pop()
        if name not in drop:
            continue
        drop.discard(name)
        stack.extend(node_name(ref) for ref in nodes[name].input)
    if not drop:
        return meta_graph
    kept = {name for name in nodes if name not in drop}
    kept_nodes = [node for name, node in nodes.items() if name in kept]
    index = _CollectionIndex(meta_graph, nodes)
    return _subset(meta_graph, index, nodes, kept, kept_nodes, meta_graph.graph_def)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while protobuf objects are made.

    Indexing a graph creates one short-lived wrapper object per node; in a
    process holding TensorFlow's large heap, the collections those allocations
    trigger took longer than the pruning itself (0.28 s against 0.17 s for a
    one-tower load of the benchmark model). The wrappers form no cycles, so
    nothing is lost by collecting afterwards. Nested uses leave it to the outermost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def replace_graph_def(
    meta_graph: meta_graph_pb2.MetaGraphDef, graph_def: Any
) -> meta_graph_pb2.MetaGraphDef:
    """``meta_graph`` with ``graph_def`` (e.g. frozen) in place of its graph.

    Collection entries and signatures naming a node of the old graph that the
    new one lacks are dropped, as is the ``saver_def``.
    """
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    index = _CollectionIndex(meta_graph, nodes)
    kept = {node.name for node in graph_def.node}
    return _subset(meta_graph, index, nodes, kept, graph_def.node, graph_def)


def _subset(
    meta_graph: meta_graph_pb2.MetaGraphDef,
    index: _CollectionIndex,
    nodes: Any,
    kept: set[str],
    kept_nodes: Iterable[Any],
    graph_def: Any,
) -> meta_graph_pb2.MetaGraphDef:
    pruned = meta_graph_pb2.MetaGraphDef()
    if meta_graph.HasField("meta_info_def"):
        pruned.meta_info_def.CopyFrom(meta_graph.meta_info_def)
    pruned.graph_def.versions.CopyFrom(graph_def.versions)
    if graph_def.HasField("library"):
        pruned.graph_def.library.CopyFrom(graph_def.library)
    pruned.graph_def.node.extend(kept_nodes)

    for key, collection in meta_graph.collection_def.items():
        if key in _DROPPED_COLLECTIONS:
            continue
        kind = collection.WhichOneof("kind")
        target = pruned.collection_def[key]
        if kind == "node_list":
            target.node_list.value.extend(
                v for v in collection.node_list.value if node_name(v) in kept
            )
        elif kind == "bytes_list" and key in index.entry_refs:
            target.bytes_list.value.extend(
                raw
                for raw, refs in zip(
                    collection.bytes_list.value, index.entry_refs[key], strict=True
                )
                if all(ref in kept for ref in refs)
            )
        else:
            # Plain numbers, opaque bytes and Any protos name no nodes.
            target.CopyFrom(collection)
        if target.WhichOneof("kind") is None or not _has_values(target):
            del pruned.collection_def[key]

    for key, signature in meta_graph.signature_def.items():
        if all(ref in kept for ref in node_refs(signature, nodes)):
            pruned.signature_def[key].CopyFrom(signature)
    for asset in meta_graph.asset_file_def:
        if all(ref in kept for ref in node_refs(asset, nodes)):
            pruned.asset_file_def.add().CopyFrom(asset)
    return pruned


def _has_values(collection: meta_graph_pb2.CollectionDef) -> bool:
    kind = collection.WhichOneof("kind")
    return kind is not None and len(getattr(collection, kind).value) > 0
