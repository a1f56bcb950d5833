"""``nestgraph.bundle``'s inspection functions: sniff, read the spec and graph, import."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from google.protobuf import text_format

import nestgraph as ng
from nestgraph import bundle
from nestgraph.bundle import _container

tf1 = tf.compat.v1


class Tiny(ng.GraphConvertible):
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 2], name="x")
        self.w = tf1.get_variable("w", [2, 1])
        self.y = tf.matmul(self.x, self.w, name="y")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    directory = tmp_path_factory.mktemp("inspect")
    graph = tf.Graph()
    with graph.as_default():
        model = Tiny()
        with tf1.Session(graph=graph) as s:
            s.run(tf1.global_variables_initializer())
            ng.save(model, s, directory / "model.ng")
        meta = tf1.train.export_meta_graph(str(directory / "model.meta"))
        (directory / "model.pbtxt").write_text(text_format.MessageToString(meta))
        ng.save_spec(ng.to_graph(model), directory / "model.yaml")
    (directory / "garbage.meta").write_bytes(b"\xff\xfe not a proto \x00")
    yield {p.name: p for p in directory.iterdir()}


def test_is_bundle_by_content(files: dict[str, Path], tmp_path: Path) -> None:
    assert bundle.is_bundle(files["model.ng"])
    assert bundle.is_bundle(files["model.ng"].read_bytes())
    assert not bundle.is_bundle(files["model.yaml"])
    renamed = tmp_path / "looks-like.yaml"
    renamed.write_bytes(files["model.ng"].read_bytes())
    assert bundle.is_bundle(str(renamed))
    with pytest.raises(ng.BundleError, match="nope.ng: no such file"):
        bundle.is_bundle(tmp_path / "nope.ng")
    with pytest.raises(ng.BundleError, match="is a directory, not a file"):
        bundle.is_bundle(tmp_path)


def test_read_spec_skips_the_checkpoint(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    unpack = _container.unpack

    def spy(*args: Any, checkpoint: bool = True) -> Any:
        seen.append(checkpoint)
        return unpack(*args, checkpoint=checkpoint)

    monkeypatch.setattr("nestgraph.bundle._inspect.unpack", spy)
    spec = bundle.read_spec(files["model.ng"])
    assert spec == ng.load_spec(files["model.yaml"])
    assert bundle.read_spec(files["model.ng"].read_bytes()) == spec
    assert seen == [False, False]
    with pytest.raises(ng.BundleError, match="model.yaml: not a nestgraph bundle"):
        bundle.read_spec(files["model.yaml"])


def test_read_meta_graph_from_a_bundle_or_meta_files(files: dict[str, Path]) -> None:
    from_bundle = bundle.read_meta_graph(files["model.ng"])
    names = {node.name for node in from_bundle.graph_def.node}
    assert {"x", "w", "y"} <= names
    for name in ("model.meta", "model.pbtxt"):
        assert {"x", "w", "y"} <= {
            n.name for n in bundle.read_meta_graph(files[name]).graph_def.node
        }
    with pytest.raises(ng.BundleError, match=r"garbage\.meta: not a MetaGraphDef"):
        bundle.read_meta_graph(files["garbage.meta"])
    with pytest.raises(ng.BundleError, match="holds no graph"):
        bundle.read_meta_graph(b"")


def test_import_graph_clears_devices_by_default(files: dict[str, Path]) -> None:
    graph = bundle.import_graph(files["model.ng"])
    assert ng.check(ng.load_spec(files["model.yaml"]), graph).ok
    assert graph.get_tensor_by_name("y:0").shape.as_list() == [None, 1]
    # A graph saved on a cluster: its placements go unless asked to stay.
    meta_graph = bundle.read_meta_graph(files["model.meta"])
    for node in meta_graph.graph_def.node:
        node.device = "/job:worker/task:3"
    assert bundle.import_graph(meta_graph).get_operation_by_name("y").device == ""
    kept = bundle.import_graph(meta_graph, clear_devices=False)
    assert kept.get_operation_by_name("y").device == "/job:worker/task:3"
