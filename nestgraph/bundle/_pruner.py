"""Pruning one graph for many seed sets, each at the cost of what it keeps.

``_metagraph.prune_meta_graph`` indexes the whole graph for every call; a
save that indexes every container of its spec (``_subnetindex``) prunes the
same graph hundreds of times, so ``Pruner`` indexes it once and then follows
only the nodes each closure reaches.
"""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph.bundle._metagraph import (
    _DROPPED_COLLECTIONS,
    _closure,
    _CollectionIndex,
    _has_values,
    node_name,
    node_refs,
)

__all__ = ["Pruner"]


class Pruner:
    """:func:`prune_meta_graph` for many seed sets of one graph, each at its own cost.

    The graph and its collections are indexed once; ``kept(seeds)`` and
    ``skeleton(kept)`` then touch only the kept nodes and the collection
    entries that name them.
    """

    def __init__(self, meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
        self.meta_graph = meta_graph
        self.nodes = {node.name: node for node in meta_graph.graph_def.node}
        self.position = {name: i for i, name in enumerate(self.nodes)}
        self.index = _CollectionIndex(meta_graph, self.nodes)
        # key -> entries that name no node (always kept); node -> (key, entry) naming it
        self.unconditional: dict[str, list[int]] = {}
        self.mentions: dict[str, list[tuple[str, int]]] = {}
        for key, collection in meta_graph.collection_def.items():
            kind = collection.WhichOneof("kind")
            if key in _DROPPED_COLLECTIONS:
                continue
            if kind == "node_list":
                for i, value in enumerate(collection.node_list.value):
                    self.mentions.setdefault(node_name(value), []).append((key, i))
            elif kind == "bytes_list" and key in self.index.entry_refs:
                for i, refs in enumerate(self.index.entry_refs[key]):
                    if not refs:
                        self.unconditional.setdefault(key, []).append(i)
                    for ref in set(refs):
                        self.mentions.setdefault(ref, []).append((key, i))
        self.signature_refs = {
            key: node_refs(signature, self.nodes)
            for key, signature in meta_graph.signature_def.items()
        }
        self.asset_refs = [node_refs(asset, self.nodes) for asset in meta_graph.asset_file_def]
        # What _closure follows from each node, resolved when first reached (most
        # nodes, gradients and optimizer updates, are in no sub-network's closure).
        self.adjacency: dict[str, list[str]] = {}

    def kept(self, seeds: Iterable[str], known: Iterable[str] = ()) -> set[str]:
        """The closure of ``seeds``; ``known`` is a closure already found.

        The closure of a union is the union of the closures, so a container's
        closure can start from its parts' (their contexts are already in them).
        """
        return _closure(self.nodes, seeds, self.index, known, self.adjacency)

    def skeleton(
        self, kept: set[str], *, head: bool = True
    ) -> tuple[list[int], meta_graph_pb2.MetaGraphDef]:
        """The positions (in graph order) of ``kept`` (from :meth:`kept`) and the pruned
        MetaGraphDef without their nodes.

        The skeleton holds no nodes and no function library (nor, unless
        ``head``, the ``meta_info_def``): with those added back, it is what
        :func:`prune_meta_graph` returns for the seeds of ``kept``.
        """
        meta_graph = self.meta_graph
        pruned = meta_graph_pb2.MetaGraphDef()
        if head and meta_graph.HasField("meta_info_def"):
            pruned.meta_info_def.CopyFrom(meta_graph.meta_info_def)
        pruned.graph_def.versions.CopyFrom(meta_graph.graph_def.versions)
        chosen: dict[str, set[int]] = {}
        for name in kept:
            for key, i in self.mentions.get(name, ()):
                chosen.setdefault(key, set()).add(i)
        for key, collection in meta_graph.collection_def.items():
            if key in _DROPPED_COLLECTIONS:
                continue
            kind = collection.WhichOneof("kind")
            if kind == "node_list":
                values = collection.node_list.value
                picked = [values[i] for i in sorted(chosen.get(key, ()))]
                if picked:
                    pruned.collection_def[key].node_list.value.extend(picked)
            elif kind == "bytes_list" and key in self.index.entry_refs:
                refs = self.index.entry_refs[key]
                candidates = chosen.get(key, set()).union(self.unconditional.get(key, ()))
                values = collection.bytes_list.value
                picked = [
                    values[i] for i in sorted(candidates) if all(ref in kept for ref in refs[i])
                ]
                if picked:
                    pruned.collection_def[key].bytes_list.value.extend(picked)
            elif _has_values(collection):
                pruned.collection_def[key].CopyFrom(collection)
        for key, signature in meta_graph.signature_def.items():
            if all(ref in kept for ref in self.signature_refs[key]):
                pruned.signature_def[key].CopyFrom(signature)
        for asset, asset_refs in zip(meta_graph.asset_file_def, self.asset_refs, strict=True):
            if all(ref in kept for ref in asset_refs):
                pruned.asset_file_def.add().CopyFrom(asset)
        return sorted(self.position[name] for name in kept), pruned
