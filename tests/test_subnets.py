"""Sub-network loads through the bundle's index (nestgraph.bundle._subnets)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf
from conftest import Members, bundle_members, sealed
from hypothesis import HealthCheck, given, settings

import nestgraph as ng
from nestgraph.bundle import _load, _metagraph, _subnets
from nestgraph.bundle._subnetindex import SLICE_HEADER

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._models import batch, build_tower_model

tf1 = tf.compat.v1
ALLOW = ["benchmarks._models.*"]


@pytest.fixture(scope="module")
def tower_bundle() -> Iterator[tuple[bytes, np.ndarray]]:
    """A small trained tower model as bundle bytes, and tower 1's output on a batch."""
    with tf.Graph().as_default():
        model = build_tower_model(towers=3, layers=2, width=4)
        session = tf1.Session()
        session.run(tf1.global_variables_initializer())
        x, y = batch(4, 0)
        session.run(model.train_op, {model.x: x, model.y: y})
        expected = session.run(model.towers[1].out, {model.x: x})
        data = ng.dumps(model, session)
        session.close()
    yield data, expected


def _tower_output(data: bytes, **kwargs: Any) -> np.ndarray:
    tower, session = ng.loads(data, subtree="towers.1", allow=ALLOW, **kwargs)
    try:
        result: np.ndarray = session.run(tower.out, {"x:0": batch(4, 0)[0]})
        return result
    finally:
        session.close()


def _directory(members: Members) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(dict(members)["subnets.json"])
    return result


def _replaced(members: Members, name: str, data: bytes) -> Members:
    return [(n, data if n == name else d) for n, d in members]


def _no_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the full path was taken")

    monkeypatch.setattr(_metagraph, "prune_meta_graph", refuse)
    monkeypatch.setattr(_load, "read_located", refuse)
    monkeypatch.setattr(ng.Spec, "from_yaml", refuse)


def test_a_sub_network_load_reads_neither_the_whole_graph_nor_the_whole_spec(
    tower_bundle: tuple[bytes, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, expected = tower_bundle
    _no_full_path(monkeypatch)
    np.testing.assert_allclose(_tower_output(data), expected, rtol=1e-6)


def test_a_bundle_without_an_index_loads_the_full_way(
    tower_bundle: tuple[bytes, np.ndarray],
) -> None:
    data, expected = tower_bundle
    members = [(n, d) for n, d in bundle_members(data) if not n.startswith("subnets.")]
    np.testing.assert_allclose(_tower_output(sealed(members)), expected, rtol=1e-6)


def test_an_index_made_for_another_spec_is_not_used(
    tower_bundle: tuple[bytes, np.ndarray],
) -> None:
    data, _ = tower_bundle
    members = bundle_members(data)
    spec = dict(members)["spec.yaml"].replace(b"tower_1/layer_1/Relu:0", b"tower_1/layer_0/Relu:0")
    edited = sealed(_replaced(members, "spec.yaml", spec))
    tower, session = ng.loads(edited, subtree="towers.1", allow=ALLOW)
    session.close()
    assert tower.out.name == "tower_1/layer_0/Relu:0"  # what the edited spec says


def test_a_damaged_slice_is_a_bundle_error(
    tower_bundle: tuple[bytes, np.ndarray], tmp_path: Path
) -> None:
    data, _ = tower_bundle
    members = bundle_members(data)
    offset, size, _ = _directory(members)["entries"]["towers.1"]
    blob = bytearray(dict(members)["subnets.bin"])
    blob[offset + size // 2] ^= 0xFF
    damaged = sealed(_replaced(members, "subnets.bin", bytes(blob)))
    with pytest.raises(ng.BundleError, match=r"sub-network index: checksum mismatch.*'towers\.1'"):
        ng.loads(damaged, subtree="towers.1", allow=ALLOW)
    path = tmp_path / "damaged.ng"
    path.write_bytes(damaged)
    with pytest.raises(ng.BundleError) as caught:
        ng.load(path, subtree="towers.1", allow=ALLOW)
    assert isinstance(caught.value, ng.NestgraphError)
    assert caught.value.file == str(path) and str(path) in str(caught.value)
    ng.loads(damaged, allow=ALLOW)[1].close()  # a full load does not read the index


def test_damaged_graph_ranges_are_a_bundle_error(tower_bundle: tuple[bytes, np.ndarray]) -> None:
    data, _ = tower_bundle
    members = bundle_members(data)
    graph = bytearray(dict(members)["graph.pb"])
    blob = dict(members)["subnets.bin"]
    offset, _, _ = _directory(members)["entries"]["towers.1"]
    spec_size, meta_size, _ = SLICE_HEADER.unpack_from(blob, offset)
    start = offset + SLICE_HEADER.size + spec_size
    first, size = json.loads(blob[start : start + meta_size])["graph"][0]
    graph[first + size // 2] ^= 0x01
    # The index names the new graph.pb, so it is used, and its ranges no longer match.
    directory = _directory(members)
    directory["graph_sha256"] = hashlib.sha256(graph).hexdigest()
    forged = _replaced(members, "graph.pb", bytes(graph))
    forged = _replaced(forged, "subnets.json", json.dumps(directory).encode())
    with pytest.raises(ng.BundleError, match=r"checksum mismatch for the graph ranges"):
        ng.loads(sealed(forged), subtree="towers.1", allow=ALLOW)


def _forged_entry(members: Members, entry: Any) -> bytes:
    directory = _directory(members)
    directory["entries"]["towers.1"] = entry
    return sealed(_replaced(members, "subnets.json", json.dumps(directory).encode()))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([0, 10**12, "0" * 64], r"outside the member"),
        ([-1, 5, "0" * 64], r"the entry of 'towers\.1' is malformed"),
        ("everything", r"the entry of 'towers\.1' is malformed"),
        ([0, 4, "0" * 64], r"checksum mismatch"),
    ],
)
def test_a_forged_directory_entry_is_a_bundle_error(
    tower_bundle: tuple[bytes, np.ndarray], entry: Any, message: str
) -> None:
    forged = _forged_entry(bundle_members(tower_bundle[0]), entry)
    with pytest.raises(ng.BundleError, match=message):
        ng.loads(forged, subtree="towers.1", allow=ALLOW)


def _resliced(members: Members, edit: Any) -> bytes:
    """The bundle with towers.1's slice rewritten by ``edit(spec_doc, meta)``, sealed again."""
    directory = _directory(members)
    blob = dict(members)["subnets.bin"]
    offset, size, _ = directory["entries"]["towers.1"]
    piece = blob[offset : offset + size]
    spec_size, meta_size, _skeleton_size = SLICE_HEADER.unpack_from(piece)
    start = SLICE_HEADER.size
    doc = json.loads(piece[start : start + spec_size])
    meta = json.loads(piece[start + spec_size : start + spec_size + meta_size])
    skeleton = piece[start + spec_size + meta_size :]
    doc, meta = edit(doc, meta)
    spec_json, meta_json = json.dumps(doc).encode(), json.dumps(meta).encode()
    new = SLICE_HEADER.pack(len(spec_json), len(meta_json), len(skeleton))
    new += spec_json + meta_json + skeleton
    directory["entries"]["towers.1"] = [len(blob), len(new), hashlib.sha256(new).hexdigest()]
    members = _replaced(members, "subnets.bin", blob + new)
    return sealed(_replaced(members, "subnets.json", json.dumps(directory).encode()))


def test_a_slice_is_validated_as_any_spec_is(tower_bundle: tuple[bytes, np.ndarray]) -> None:
    members = bundle_members(tower_bundle[0])

    def bad_class(doc: Any, meta: Any) -> tuple[Any, Any]:
        doc["fields"]["towers"][0]["class"] = "os:system"
        return doc, meta

    with pytest.raises(ng.ClassNotAllowedError, match=r"towers\.1.*os:system"):
        ng.loads(_resliced(members, bad_class), subtree="towers.1", allow=ALLOW)

    def lying_lengths(doc: Any, meta: Any) -> tuple[Any, Any]:
        meta["expand"] = [[["fields", "towers"], 2, [5]]]
        return doc, meta

    with pytest.raises(ng.BundleError, match=r"malformed list length"):
        ng.loads(_resliced(members, lying_lengths), subtree="towers.1", allow=ALLOW)


_json_values = st.recursive(
    st.one_of(st.integers(-3, 10**6), st.text(max_size=4), st.none(), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(["expand", "lines", "graph", "graph_sha256"]), value=_json_values)
def test_hostile_slice_metadata_is_refused_cleanly(
    tower_bundle: tuple[bytes, np.ndarray], field: str, value: Any
) -> None:
    members = bundle_members(tower_bundle[0])

    def edit(doc: Any, meta: Any) -> tuple[Any, Any]:
        meta[field] = value
        return doc, meta

    forged = _resliced(members, edit)
    try:
        tower, session = ng.loads(forged, subtree="towers.1", allow=ALLOW)
    except (ng.BundleError, ng.SpecError, ng.BindingError):
        return
    session.close()  # harmless metadata (lines that name nothing, say) still loads the tower
    assert tower.layers[0].w.name == "tower_1/layer_0/w:0"


def test_index_keys() -> None:
    assert _subnets.index_key("towers.3.layers[1]") == "towers.3.layers.1"
    with pytest.raises(ng.SpecError, match="malformed path"):
        _subnets.index_key("towers..3")
