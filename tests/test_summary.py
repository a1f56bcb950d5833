"""``ng.summary``: rows per object, parameters and bytes from the graph, totals, sharing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph.bundle import _container

tf1 = tf.compat.v1


class Dense(ng.GraphConvertible):
    def __init__(self, x: Any, units: int, scope: str) -> None:
        with tf1.variable_scope(scope):
            self.w = tf1.get_variable("w", [x.shape[-1], units])
            self.b = tf1.get_variable("b", [units], dtype=tf.float64)
            self.out = tf.matmul(x, self.w) + tf.cast(self.b, tf.float32)


class Model(ng.GraphConvertible):
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 4], name="x")
        self.layers = [Dense(self.x, 3, "l0")]
        self.layers.append(Dense(self.layers[0].out, 2, "l1"))
        self.best = self.layers[0]
        self.step = tf1.train.get_or_create_global_step()
        loss = tf.reduce_sum(self.layers[1].out)
        self.train = tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=self.step)


def size_and_bytes(variables: list[Any]) -> tuple[int, int]:
    params = sum(int(np.prod(v.shape.as_list())) for v in variables)
    nbytes = sum(int(np.prod(v.shape.as_list())) * v.dtype.base_dtype.size for v in variables)
    return params, nbytes


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("summary")
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        model = Model()
        session.run(tf1.global_variables_initializer())
        ng.save(model, session, directory / "model.ng")
        bound = [*(v for layer in model.layers for v in (layer.w, layer.b)), model.step]
        yield {
            "bundle": directory / "model.ng",
            "graph": graph,
            "spec": ng.to_graph(model),
            "bound": bound,
            "trainable": [v for v in bound if v is not model.step],
            "all": graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES),
            "layer1": [model.layers[1].w, model.layers[1].b],
        }


def row(result: Any, path: str) -> Any:
    return next(r for r in result.rows if r.path == path)


def test_a_bundle_gives_params_and_bytes_per_object(saved: dict[str, Any]) -> None:
    result = ng.summary(saved["bundle"])
    spec = saved["spec"]
    assert [r.path for r in result.rows] == ["<root>", "layers", "layers.0", "layers.1", "best"]
    root = row(result, "<root>")
    assert root.what == f"{Model.__module__}:Model"
    assert root.bindings == result.bindings == len(list(spec.bindings()))
    assert (root.count.params, root.count.nbytes) == size_and_bytes(saved["bound"])
    assert (result.total.params, result.total.nbytes) == size_and_bytes(saved["bound"])
    layer1 = row(result, "layers.1")
    assert (layer1.count.params, layer1.count.nbytes) == size_and_bytes(saved["layer1"])
    assert layer1.bindings == 3
    # Trainable and non-trainable apart (the global step is not trainable).
    assert (result.trainable.params, result.trainable.nbytes) == size_and_bytes(saved["trainable"])
    assert (result.non_trainable.params, result.non_trainable.nbytes) == (1, 8)
    # The graph's own totals hold the optimizer's slots as well.
    assert result.graph_variables == len(saved["all"])
    assert result.graph_total.params == size_and_bytes(saved["all"])[0] > result.total.params


def test_shared_objects_are_counted_once_and_marked(saved: dict[str, Any]) -> None:
    result = ng.summary(saved["bundle"])
    assert row(result, "layers.0").note == "shared: also at best"
    best = row(result, "best")
    assert (best.what, best.bindings, best.count) == ("ref", 0, None)
    assert best.note == "= layers.0, counted there"
    layers = row(result, "layers")
    assert layers.count.params == row(result, "layers.0").count.params + layer_params(result)


def layer_params(result: Any) -> int:
    return int(row(result, "layers.1").count.params)


def test_the_table(saved: dict[str, Any]) -> None:
    text = str(ng.summary(saved["bundle"]))
    lines = text.splitlines()
    assert lines[0].split() == ["path", "class", "bindings", "params", "bytes"]
    assert set(lines[1]) == {"-"}
    assert any(
        line.startswith("layers.0 ") and line.endswith("shared: also at best") for line in lines
    )
    total = ng.summary(saved["bundle"]).total
    assert f"params: {total.params:,} (" in text
    assert "  trainable: " in text and "non-trainable: 1 (8 B)" in text


def test_depth_and_subtree(saved: dict[str, Any]) -> None:
    assert [r.path for r in ng.summary(saved["bundle"], depth=0).rows] == ["<root>"]
    assert [r.path for r in ng.summary(saved["bundle"], depth=1).rows] == [
        "<root>",
        "layers",
        "best",
    ]
    # Rows below the depth still count in their parents.
    shallow = ng.summary(saved["bundle"], depth=0)
    assert shallow.rows[0].count == ng.summary(saved["bundle"]).rows[0].count
    sub = ng.summary(saved["bundle"], subtree="layers.1")
    assert [r.path for r in sub.rows] == ["layers.1"]
    assert (sub.total.params, sub.total.nbytes) == size_and_bytes(saved["layer1"])
    with pytest.raises(ng.SpecError, match="depth must be a whole number >= 0, not -1"):
        ng.summary(saved["bundle"], depth=-1)
    with pytest.raises(ng.SpecError, match=r"layers\.7: no '7' here"):
        ng.summary(saved["bundle"], subtree="layers.7")


def test_a_spec_with_a_graph_or_without(saved: dict[str, Any], tmp_path: Path) -> None:
    from_bundle = ng.summary(saved["bundle"])
    with_graph = ng.summary(saved["spec"], saved["graph"])
    assert with_graph.rows == from_bundle.rows
    assert (with_graph.total, with_graph.graph_total) == (
        from_bundle.total,
        from_bundle.graph_total,
    )
    alone = ng.summary(saved["spec"])
    assert alone.total is None and all(r.count is None for r in alone.rows)
    assert [r.bindings for r in alone.rows] == [r.bindings for r in from_bundle.rows]
    assert "params: unknown without a graph" in str(alone)
    ng.save_spec(saved["spec"], tmp_path / "model.yaml")
    assert ng.summary(tmp_path / "model.yaml").rows == alone.rows
    assert ng.summary(saved["bundle"].read_bytes()).rows == from_bundle.rows


def test_reads_a_bundle_without_importing_its_graph_or_weights(
    saved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("summary must not import the graph or open a session")

    monkeypatch.setattr(tf1.train, "import_meta_graph", refuse)
    monkeypatch.setattr(tf, "import_graph_def", refuse)
    monkeypatch.setattr(tf1, "Session", refuse)
    unpack = _container.unpack
    calls: list[bool] = []

    def spy(*args: Any, checkpoint: bool = True) -> Any:
        calls.append(checkpoint)
        return unpack(*args, checkpoint=checkpoint)

    monkeypatch.setattr("nestgraph.bundle._inspect.unpack", spy)
    assert ng.summary(saved["bundle"]).total.params > 0
    assert calls and not any(calls)  # the checkpoint was never read


def test_bad_sources(saved: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ng.BundleError, match="nope.ng: no such file"):
        ng.summary(tmp_path / "nope.ng")
    with pytest.raises(TypeError, match="summary takes a bundle"):
        ng.summary(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="graph must be a tf.Graph or a MetaGraphDef"):
        ng.summary(saved["spec"], graph="graph.pb")


def test_a_variable_of_unknown_shape_is_flagged_not_guessed(graph: Any) -> None:
    known = tf1.get_variable("known", [2, 3])
    unknown = tf1.Variable(tf1.placeholder_with_default([1.0], shape=[None]), validate_shape=False)
    spec = ng.to_graph({"known": known, "unknown": unknown})
    result = ng.summary(spec, graph)
    assert (result.total.params, result.total.unknown) == (6, 1)
    assert result.rows[0].count.params_text() == "6+?"
    assert "+?: 1 variable(s) not counted in full: unknown shape" in str(result)
