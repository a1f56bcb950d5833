"""The sub-network index written with a bundle (nestgraph.bundle._subnetindex).

Every indexed path must give, through the index, exactly what the full path
computes: the pruned MetaGraphDef of ``_metagraph.prune_meta_graph`` and the
spec's subtree with the lines of ``spec.yaml``.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from tensorflow.core.protobuf import meta_graph_pb2

import nestgraph as ng
from nestgraph.bundle import _subnetindex, _subnets
from nestgraph.bundle._container import GRAPH, SUBNET_DATA, SUBNETS
from nestgraph.bundle._metagraph import prune_meta_graph
from nestgraph.bundle._zipstream import unpack_parts

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._models import Dense, Tower, build_tower_model

tf1 = tf.compat.v1
ALLOW = ["benchmarks._models.*"]


def _shared_model() -> tuple[dict[str, Any], Any]:
    """Towers in a list, a dict and a tuple, with objects shared across them (refs)."""
    graph = tf.Graph()
    with graph.as_default():
        model = build_tower_model(towers=3, layers=2, width=4)
        with tf1.variable_scope("extra"):
            w = tf1.get_variable("w", [4, 4])
            b = tf1.get_variable("b", [4])
            out = tf.nn.relu(tf.matmul(model.x, w) + b)
        extra = Dense(w, b, out)
        # towers.1 reaches outside itself: its second layer is `extra`, first shown at top level.
        second = Tower([model.towers[1].layers[0], extra], extra.out, model.towers[1].loss)
        root = {
            "extra": extra,
            "towers": [model.towers[0], second, model.towers[2]],
            "heads": {"main": model.towers[0].layers[1], "pair": (extra, model.towers[2])},
            "x": model.x,
            "lr": 0.5,
        }
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    return root, session


@pytest.fixture(scope="module")
def shared() -> tuple[dict[str, Any], Any, bytes]:
    root, session = _shared_model()
    data = ng.dumps(root, session)
    yield root, session, data
    session.close()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _full(data: bytes) -> tuple[ng.Spec, meta_graph_pb2.MetaGraphDef]:
    members = _members(data)
    spec = ng.Spec.from_yaml(members["spec.yaml"], source="<bytes>:spec.yaml")
    return spec, meta_graph_pb2.MetaGraphDef.FromString(members[GRAPH])


def _selected(data: bytes, subtree: str) -> tuple[ng.Spec, meta_graph_pb2.MetaGraphDef] | None:
    stream = io.BytesIO(data)
    parts = unpack_parts(stream, "<bytes>", (GRAPH,))
    return _subnets.select(parts, stream, subtree, "<bytes>")


def test_every_container_is_indexed_breadth_first(shared: tuple[Any, Any, bytes]) -> None:
    directory = json.loads(_members(shared[2])[SUBNETS])
    keys = list(directory["entries"])
    assert keys[:4] == ["extra", "towers", "heads", "towers.0"]
    assert {"towers.0.layers.1", "heads.pair", "towers.2.layers.0"} <= set(keys)
    # A ref is indexed at the object's own path; a load through it takes the full path.
    assert not {"heads.main", "heads.pair.0", "heads.pair.1", "towers.1.layers.1"} & set(keys)
    depths = [key.count(".") for key in keys]
    assert depths == sorted(depths)


def test_the_index_gives_what_the_full_path_computes(shared: tuple[Any, Any, bytes]) -> None:
    data = shared[2]
    full_spec, full_graph = _full(data)
    directory = json.loads(_members(data)[SUBNETS])
    for key in directory["entries"]:
        selected = _selected(data, key)
        assert selected is not None, key
        spec, meta_graph = selected
        seeds = [r.name for r in full_spec.subtree(key).bindings()]
        assert meta_graph == prune_meta_graph(full_graph, seeds), key
        assert spec.subtree(key) == full_spec.subtree(key), key
        canon, _ = full_spec.resolve(key)
        for path, _node in ng.nodes.iter_nodes(full_spec.resolve(key)[1], canon):
            assert spec.line_of(path) == full_spec.line_of(path), (key, path)
        assert spec.line_of(canon) is not None


def test_a_ref_outside_the_subtree_comes_with_it(shared: tuple[Any, Any, bytes]) -> None:
    root, session, data = shared
    tower, tower_session = ng.loads(data, subtree="towers.1", allow=ALLOW)
    try:
        assert tower.layers[1].w.name == "extra/w:0"
        x = np.ones((2, 4), np.float32)
        np.testing.assert_allclose(
            tower_session.run(tower.out, {"x:0": x}),
            session.run(root["extra"].out, {root["x"]: x}),
            rtol=1e-6,
        )
    finally:
        tower_session.close()


def test_paths_are_looked_up_in_either_spelling(shared: tuple[Any, Any, bytes]) -> None:
    data = shared[2]
    assert _selected(data, "towers[2].layers[0]") is not None
    assert _selected(data, "heads.pair") is not None
    assert _selected(data, "towers.9") is None  # not indexed: the full path reports it
    assert _selected(data, "heads.main") is None  # a ref: the full path follows it
    layer, layer_session = ng.loads(data, subtree="heads.main", allow=ALLOW)
    layer_session.close()
    assert layer.w.name == "tower_0/layer_1/w:0"
    with pytest.raises(ng.SpecError, match=r"towers\.9"):
        ng.loads(data, subtree="towers.9", allow=ALLOW)


def test_nothing_is_indexed_past_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_subnetindex, "_BUDGET_FLOOR", 0)
    monkeypatch.setattr(_subnetindex, "_BUDGET_RATIO", 0)
    root, session = _shared_model()
    try:
        data = ng.dumps(root, session)
        assert SUBNETS not in _members(data) and SUBNET_DATA not in _members(data)
        tower, tower_session = ng.loads(data, subtree="towers.2", allow=ALLOW)
        tower_session.close()
        assert tower.layers[0].w.name == "tower_2/layer_0/w:0"
    finally:
        session.close()


def test_graph_spans_are_the_node_records(shared: tuple[Any, Any, bytes]) -> None:
    graph = _members(shared[2])[GRAPH]
    meta_graph = meta_graph_pb2.MetaGraphDef.FromString(graph)
    spans = _subnetindex._graph_spans(graph)
    assert spans is not None and spans.head is not None
    head = meta_graph_pb2.MetaGraphDef.FromString(graph[spans.head[0] : sum(spans.head)])
    assert head.meta_info_def == meta_graph.meta_info_def
    assert len(spans.nodes) == len(meta_graph.graph_def.node)
    for (offset, size), node in zip(spans.nodes, meta_graph.graph_def.node, strict=True):
        record = graph[offset : offset + size]
        assert record[0] == 0x0A  # field 1, length-delimited
        body = record[1 + (len(record) - 1 - node.ByteSize()) :]
        assert tf1.NodeDef.FromString(body) == node


def test_a_graph_of_two_graph_def_records_is_not_indexed() -> None:
    graph_def = tf1.GraphDef()
    graph_def.node.add(name="a", op="NoOp")
    one = meta_graph_pb2.MetaGraphDef()
    one.graph_def.CopyFrom(graph_def)
    data = one.SerializeToString() * 2
    assert _subnetindex._graph_spans(data) is None


# --------------------------------------------------------------------------- the spec part

_scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.none())
_docs = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=20,
)


def _positions(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            found += _positions(item, (*here, i))
    elif isinstance(doc, dict):
        for key, item in doc.items():
            found += _positions(item, (*here, key))
    return found


def _at(doc: Any, ypath: tuple[Any, ...]) -> Any:
    for key in ypath:
        doc = doc[key]
    return doc


@settings(max_examples=200, deadline=None)
@given(doc=_docs, data=st.data())
def test_taken_then_expanded_documents_keep_what_was_taken(doc: Any, data: Any) -> None:
    positions = _positions(doc)
    wanted = data.draw(st.lists(st.sampled_from(positions), min_size=1, max_size=3))
    expand: list[Any] = []
    taken = _subnetindex._take(doc, (), _subnetindex._trie(wanted), expand, members=True)
    restored = json.loads(json.dumps(taken))
    _subnets._expand(restored, json.loads(json.dumps(expand)), "k")
    for ypath in wanted:
        assert _at(restored, ypath) == _at(doc, ypath)
    # Every list on the way has its full length again; what was left out is a placeholder.
    for ypath in wanted:
        for depth in range(len(ypath)):
            original = _at(doc, ypath[:depth])
            if isinstance(original, list):
                assert len(_at(restored, ypath[:depth])) == len(original)
