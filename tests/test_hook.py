"""Training loops: saving from monitored sessions, BundleSaverHook, latest_bundle."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import nestgraph as ng

tf1 = tf.compat.v1


class Regressor:
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 2], name="x")
        self.w = tf1.get_variable("w", initializer=tf.constant([[0.5], [-0.5]]))
        self.y = tf.matmul(self.x, self.w, name="y")
        self.loss = tf.reduce_sum(tf.square(self.y - 1.0), name="loss")
        self.global_step = tf1.train.get_or_create_global_step()
        self.train_op = tf1.train.GradientDescentOptimizer(0.01).minimize(
            self.loss, global_step=self.global_step
        )


X = np.array([[1.0, 2.0]], np.float32)


def _train(graph: Any, model: Regressor, hooks: list[Any], steps: int) -> np.ndarray:
    """Train ``steps`` steps under a MonitoredSession; the final weights."""
    with graph.as_default(), tf1.train.MonitoredSession(hooks=hooks) as session:
        for _ in range(steps):
            session.run(model.train_op, {model.x: X})
        weights: np.ndarray = session.run(model.w)
    return weights


def _model() -> tuple[Any, Regressor]:
    graph = tf.Graph()
    with graph.as_default():
        model = Regressor()
    return graph, model


def test_save_accepts_a_monitored_session_on_a_finalized_graph(tmp_path: Any) -> None:
    graph, model = _model()
    with graph.as_default():
        hook = ng.BundleSaverHook(model, tmp_path / "run", save_steps=1000)
        with tf1.train.MonitoredTrainingSession(hooks=[hook]) as session:
            session.run(model.train_op, {model.x: X})
            assert graph.finalized
            ng.save(model, session, tmp_path / "m.ng")
            blob = ng.dumps(model, session)
            expected = session.run(model.w)
    loads = (ng.load(tmp_path / "m.ng", generic=True), ng.loads(blob, generic=True))
    for loaded, loaded_session in loads:
        np.testing.assert_array_equal(loaded_session.run(loaded.w), expected)
        assert loaded_session.run(loaded.global_step) == 1
        loaded_session.close()


def test_a_finalized_graph_without_a_prepared_saver_is_refused(tmp_path: Any) -> None:
    graph, model = _model()
    with (
        graph.as_default(),
        tf1.train.MonitoredSession() as session,
        pytest.raises(ng.BundleError, match="finalized.*BundleSaverHook"),
    ):
        ng.save(model, session, tmp_path / "m.ng")
    assert not os.listdir(tmp_path)


def test_the_hook_saves_every_n_steps_and_keeps_the_newest(tmp_path: Any) -> None:
    graph, model = _model()
    hook = ng.BundleSaverHook(model, tmp_path / "run", save_steps=2, max_to_keep=2)
    weights = _train(graph, model, [hook], steps=7)
    names = sorted(os.listdir(tmp_path / "run"))
    # Saved at steps 2, 4, 6 and at the end (7); the two newest stay.
    assert names == ["model-6.ng", "model-7.ng"]
    latest = ng.latest_bundle(tmp_path / "run")
    assert latest == os.path.join(tmp_path / "run", "model-7.ng")
    loaded, session = ng.load(latest, generic=True)
    assert session.run(loaded.global_step) == 7
    np.testing.assert_array_equal(session.run(loaded.w), weights)
    session.close()


def test_latest_bundle_picks_the_highest_step_not_the_longest_name(tmp_path: Any) -> None:
    for name in ("model-9.ng", "model-10.ng", "model-2.ng", "notes.txt", "model-x.ng"):
        (tmp_path / name).write_bytes(b"")
    assert ng.latest_bundle(tmp_path) == os.path.join(tmp_path, "model-10.ng")
    assert ng.latest_bundle(tmp_path / "missing") is None


def test_the_hook_needs_one_schedule_and_a_global_step(tmp_path: Any) -> None:
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [1], name="x")

        class Tiny:
            pass

        tiny = Tiny()
        tiny.x = x  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="exactly one"):
            ng.BundleSaverHook(tiny, tmp_path, save_steps=1, save_secs=1)
        hook = ng.BundleSaverHook(tiny, tmp_path, save_steps=1)
        with pytest.raises(ng.BundleError, match="global step"):
            hook.begin()


def test_the_hook_refuses_a_model_of_another_graph(tmp_path: Any) -> None:
    _, model = _model()
    other, _ = _model()
    hook = ng.BundleSaverHook(model, tmp_path, save_steps=1)
    with other.as_default(), pytest.raises(ng.BindingError, match=r"not in session.graph"):
        hook.begin()


def test_saving_through_a_closed_monitored_session_is_refused(tmp_path: Any) -> None:
    graph, model = _model()
    with graph.as_default():
        hook = ng.BundleSaverHook(model, tmp_path / "run", save_steps=1000)
        with tf1.train.MonitoredTrainingSession(hooks=[hook]) as session:
            session.run(model.train_op, {model.x: X})
    with pytest.raises(ng.BundleError, match="monitored session is closed"):
        ng.save(model, session, tmp_path / "m.ng")
