"""Safety at save time: nothing lost silently, no mixed-up graphs."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph.bundle import read_spec

tf1 = tf.compat.v1


class Net:
    def __init__(self, scale: float = 2.0) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 2], name="x")
        self.w = tf1.get_variable("w", initializer=tf.constant([[1.0], [scale]]))
        self.y = tf.matmul(self.x, self.w, name="y")


def _session(graph: Any) -> Any:
    session = tf1.Session(graph=graph)
    with graph.as_default():
        session.run(tf1.global_variables_initializer())
    return session


def _net(scale: float = 2.0) -> tuple[Any, Any]:
    graph = tf.Graph()
    with graph.as_default():
        net = Net(scale)
    return net, _session(graph)


@pytest.mark.parametrize("writer", ["save", "dumps", "export"])
def test_a_model_that_binds_nothing_is_refused(tmp_path: Any, writer: str) -> None:
    _, session = _net()

    class Empty:
        def __init__(self) -> None:
            self.rate = 0.1

    with pytest.raises(ng.NestgraphError, match=r"<root>.*binds no tensor"):
        _write(writer, Empty(), session, tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_skipped_root_is_refused(tmp_path: Any) -> None:
    _, session = _net()
    with pytest.raises(ng.NestgraphError, match=r"<root>.*cannot be recorded"):
        ng.save(lambda: None, session, tmp_path / "m.ng")
    assert os.listdir(tmp_path) == []


def _write(writer: str, model: Any, session: Any, tmp_path: Any) -> Any:
    if writer == "save":
        return ng.save(model, session, tmp_path / "m.ng")
    if writer == "dumps":
        return ng.dumps(model, session)
    return ng.export(model, session, tmp_path / "m.ng")


@pytest.mark.parametrize("writer", ["save", "dumps", "export"])
def test_skipped_fields_warn_once_at_the_callers_line(tmp_path: Any, writer: str) -> None:
    net, session = _net()
    net.callback = lambda v: v  # type: ignore[attr-defined]
    net.session = object()  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _write(writer, net, session, tmp_path)
    ours = [w for w in caught if issubclass(w.category, ng.SkippedFieldsWarning)]
    assert len(ours) == 1
    assert issubclass(ours[0].category, UserWarning)
    message = str(ours[0].message)
    assert "callback:" in message and "session:" in message
    assert ours[0].filename == __file__


def test_a_fully_recorded_model_saves_without_warning(tmp_path: Any) -> None:
    net, session = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ng.SkippedFieldsWarning)
        ng.save(net, session, tmp_path / "m.ng")
    loaded, loaded_session = ng.load(tmp_path / "m.ng", generic=True)
    x = np.array([[1.0, 1.0]], np.float32)
    assert loaded_session.run(loaded.y, {loaded.x: x}).tolist() == [[3.0]]
    loaded_session.close()


@pytest.mark.parametrize("writer", ["save", "dumps", "export"])
def test_a_model_of_another_graph_is_refused(tmp_path: Any, writer: str) -> None:
    # Two models with identical names in separate graphs: the names alone match.
    _, first_session = _net(scale=2.0)
    second, _ = _net(scale=5.0)
    listed = r"^x: 3 element\(s\).*\n  x: 'x:0'.*\n  w: 'w:0'.*\n  y: 'y:0'"
    with pytest.raises(ng.BindingError, match=listed) as caught:
        _write(writer, second, first_session, tmp_path)
    assert caught.value.path == "x"
    assert os.listdir(tmp_path) == []


def test_a_mixed_model_lists_every_foreign_element(tmp_path: Any) -> None:
    net, session = _net()
    other, _ = _net()
    net.other_w = other.w  # type: ignore[attr-defined]
    with pytest.raises(ng.BindingError, match=r"1 element\(s\).*\n  other_w: 'w:0'") as caught:
        ng.save(net, session, tmp_path / "m.ng")
    assert caught.value.path == "other_w"


# --------------------------------------------------------------------------- loading next to others


def _agent_bundle(tmp_path: Any, name: str, scale: float) -> Any:
    net, session = _net(scale)
    with session.graph.as_default():
        net.steps = tf1.get_local_variable("steps", initializer=tf.constant(7))  # type: ignore[attr-defined]
    session.run(net.steps.initializer)  # type: ignore[attr-defined]
    path = tmp_path / name
    ng.save(net, session, path)
    return path


def test_two_agents_with_identical_names_load_into_one_graph(tmp_path: Any) -> None:
    first = _agent_bundle(tmp_path, "a.ng", 2.0)
    second = _agent_bundle(tmp_path, "b.ng", 5.0)
    shared = tf.Graph()
    with shared.as_default():
        own = tf.constant(1.0, name="own")
    agent_a, session_a = ng.load(first, generic=True, graph=shared, import_scope="agent_a")
    blob = second.read_bytes()
    agent_b, session_b = ng.loads(blob, generic=True, graph=shared, import_scope="b/")
    assert session_a.graph is shared and session_b.graph is shared
    assert agent_a.y.name == "agent_a/y:0" and agent_b.w.name == "b/w:0"
    x = np.array([[1.0, 1.0]], np.float32)
    assert session_a.run(agent_a.y, {agent_a.x: x}).tolist() == [[3.0]]
    assert session_b.run(agent_b.y, {agent_b.x: x}).tolist() == [[6.0]]
    assert session_a.run(agent_a.steps) == 7 and session_b.run(agent_b.steps) == 7
    assert session_a.run(own) == 1.0
    # The same bundle, bound through the same prefix by from_graph.
    again = ng.from_graph(read_spec(first), shared, import_scope="agent_a", generic=True)
    assert again.w.name == agent_a.w.name
    session_a.close()
    session_b.close()


def test_a_load_that_would_be_renamed_is_refused(tmp_path: Any) -> None:
    path = _agent_bundle(tmp_path, "a.ng", 2.0)
    shared = tf.Graph()
    _, session = ng.load(path, generic=True, graph=shared, import_scope="agent")
    session.close()
    with pytest.raises(ng.BundleError, match=r"import_scope 'agent' is already used"):
        ng.load(path, generic=True, graph=shared, import_scope="agent")
    with pytest.raises(ng.BundleError, match=r"already has ops named 'x'.*import_scope"):
        ng.load(path, generic=True, graph=_graph_with_op("x"))
    scoped, scoped_session = ng.load(path, generic=True, import_scope="only")
    assert scoped.x.name == "only/x:0"
    scoped_session.close()


def _graph_with_op(name: str) -> Any:
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(0.0, name=name)
    return graph


@pytest.mark.parametrize("writer", ["save", "export", "freeze", "saved_model"])
def test_a_missing_directory_is_named_by_the_users_path(tmp_path: Any, writer: str) -> None:
    net, session = _net()
    target = tmp_path / "missing" / "m.ng"
    with pytest.raises(ng.BundleError, match=r"m\.ng: cannot write: the directory .*missing"):
        if writer == "save":
            ng.save(net, session, target)
        elif writer == "saved_model":
            ng.export_saved_model(net, session, target, {"x": "x"}, {"y": "y"})
        else:
            ng.export(net, session, target, freeze=writer == "freeze")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- frozen exports


class BatchNormNet:
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 3], name="x")
        self.training = tf1.placeholder_with_default(False, [], name="training")
        hidden = tf1.layers.dense(self.x, 4, name="dense")
        self.out = tf1.layers.batch_normalization(hidden, training=self.training, name="bn")
        self.loss = tf.reduce_mean(tf.square(self.out - 1.0), name="loss")
        self.global_step = tf1.train.get_or_create_global_step()
        with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
            self.train_op = tf1.train.AdamOptimizer(0.1).minimize(
                self.loss, global_step=self.global_step
            )
        self.updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        self.reset = tf1.assign(self.global_step, 0, name="reset")


def test_a_frozen_export_leaves_out_what_updates_variables(tmp_path: Any) -> None:
    graph = tf.Graph()
    with graph.as_default():
        net = BatchNormNet()
    session = _session(graph)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    for _ in range(3):
        session.run(net.train_op, {net.x: x, net.training: True})
    expected = session.run(net.out, {net.x: x})
    with pytest.warns(ng.SkippedFieldsWarning, match=r"freeze=True: 4 fields update") as caught:
        ng.export(net, session, tmp_path / "frozen.ng", freeze=True)
    message = str(caught[0].message)
    for path in ("train_op:", "updates.0:", "updates.1:", "reset:"):
        assert f"\n  {path}" in message
    assert caught[0].filename == __file__
    spec = read_spec(tmp_path / "frozen.ng")
    assert spec.skipped["train_op"].startswith("frozen: it updates variables (")
    assert "loss" not in spec.skipped and "out" not in spec.skipped
    frozen, frozen_session = ng.load(tmp_path / "frozen.ng", generic=True)
    assert frozen_session.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES) == []
    np.testing.assert_allclose(frozen_session.run(frozen.out, {frozen.x: x}), expected, rtol=1e-6)
    assert isinstance(frozen.train_op, ng.SkippedField)
    frozen_session.close()


def test_a_frozen_export_of_only_updates_is_refused(tmp_path: Any) -> None:
    graph = tf.Graph()
    with graph.as_default():
        net = BatchNormNet()
    session = _session(graph)
    with pytest.raises(ng.BundleError, match=r"train_op: freeze=True: every bound field updates"):
        ng.export(net, session, tmp_path / "frozen.ng", subtree="train_op", freeze=True)
    assert os.listdir(tmp_path) == []
    # Unfrozen, the same sub-network exports and loads back with its variables.
    ng.export(net, session, tmp_path / "train.ng", subtree="train_op")
    train_op, train_session = ng.load(tmp_path / "train.ng")
    assert train_op.name == net.train_op.name
    train_session.run(train_op, {"x:0": np.ones((2, 3), np.float32), "training:0": True})
    assert train_session.run("global_step/Read/ReadVariableOp:0") == 1
    train_session.close()


def test_exporting_a_subtree_that_binds_nothing_is_refused(tmp_path: Any) -> None:
    net, session = _net()
    net.settings = {"rate": 0.5}  # type: ignore[attr-defined]
    with pytest.raises(ng.WalkError, match=r"^settings: the sub-network binds no tensor"):
        ng.export(net, session, tmp_path / "m.ng", subtree="settings")
    assert os.listdir(tmp_path) == []
