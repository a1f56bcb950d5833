"""Models written the way TF1 code is written in the wild, taken by nestgraph as they are.

Plain classes (no base class, no decorator), ``tf.compat.v1.layers`` with
batch normalisation and ``UPDATE_OPS``, a target network copied with assign
ops, a ``tf.data`` iterator, NumPy hyper-parameters, an activation function
field, a layer object, and a session and a Saver kept on the model.
"""

from __future__ import annotations

import os
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_python

import nestgraph as ng
from nestgraph.convertible import spec_for_save

# TensorFlow's deprecation notices for the legacy layers these models use on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:`tf.layers.*` is deprecated:UserWarning")

tf1 = tf.compat.v1
OBS, ACTIONS, BATCH = 3, 2, 4
ALLOW = ["test_realistic_models.*", "tensorflow.python.ops.gen_nn_ops.relu"]


class QNetwork:
    def __init__(self, scope: str, obs: Any, training: Any, activation: Any = tf.nn.relu) -> None:
        self.activation = activation
        with tf1.variable_scope(scope):
            hidden = tf1.layers.dense(obs, 4, activation=activation, name="hidden")
            hidden = tf1.layers.batch_normalization(hidden, training=training, name="norm")
            self.head = tf1.layers.Dense(ACTIONS, name="q")
            self.q = self.head(hidden)
        self.variables = tf1.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES, scope=scope + "/")


class Agent:
    def __init__(self) -> None:
        self.hparams = {"gamma": np.float32(0.9), "lr": 0.01, "epsilon": np.float64(0.1)}
        self.obs_shape = tf.TensorShape([None, OBS])
        self.dtype = tf.float32
        rng = np.random.default_rng(0)
        data = tf.data.Dataset.from_tensor_slices(
            (
                rng.normal(size=(16, OBS)).astype(np.float32),
                rng.integers(0, ACTIONS, size=16).astype(np.int32),
                rng.normal(size=16).astype(np.float32),
            )
        )
        self.iterator = tf1.data.make_initializable_iterator(data.repeat().batch(BATCH))
        self.obs, self.action, self.reward = self.iterator.get_next()
        self.training = tf1.placeholder_with_default(False, [], name="training")
        self.online = QNetwork("online", self.obs, self.training)
        self.target = QNetwork("target", self.obs, self.training)
        self.update_target = [
            tf1.assign(t, s)
            for t, s in zip(self.target.variables, self.online.variables, strict=True)
        ]
        chosen = tf.reduce_sum(self.online.q * tf.one_hot(self.action, ACTIONS), axis=1)
        goal = self.reward + float(self.hparams["gamma"]) * tf.reduce_max(self.target.q, axis=1)
        self.loss = tf.reduce_mean(tf.square(tf.stop_gradient(goal) - chosen))
        self.update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, scope="online/")
        with tf.control_dependencies(self.update_ops):
            self.train_op = tf1.train.AdamOptimizer(self.hparams["lr"]).minimize(
                self.loss, var_list=tf1.trainable_variables("online/")
            )
        self.init = tf1.global_variables_initializer()
        self.saver = tf1.train.Saver(max_to_keep=2)
        self.sess = tf1.Session()
        self.sess.run([self.init, self.iterator.initializer])
        self.sess.run(self.update_target)

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.sess.run(self.train_op, {self.training: True})


def _build() -> tuple[tf.Graph, Agent]:
    graph = tf.Graph()
    with graph.as_default():
        agent = Agent()
    return graph, agent


@pytest.fixture
def agent() -> Any:
    graph, built = _build()
    with graph.as_default():
        yield built
    built.sess.close()


def test_a_plain_class_model_is_walked_whole(agent: Agent) -> None:
    spec = ng.to_graph(agent)
    data = spec.to_dict()
    assert data["class"] == "test_realistic_models:Agent"
    fields = data["fields"]
    assert list(fields)[:3] == ["hparams", "obs_shape", "dtype"]  # definition order
    assert fields["hparams"] == {
        "dict": {"gamma": "numpy float32 0.9", "lr": 0.01, "epsilon": "numpy float64 0.1"}
    }
    assert fields["obs_shape"] == "shape [None, 3]"
    assert fields["dtype"] == "dtype float32"
    assert fields["online"]["class"] == "test_realistic_models:QNetwork"
    assert fields["online"]["fields"]["activation"] == (
        "function tensorflow.python.ops.gen_nn_ops:relu"
    )
    assert fields["sess"] == "session Session"
    assert fields["saver"].startswith("saver save/Const:0 save/control_dependency:0 ")
    flat = spec.flatten()
    assert flat["online.head.kernel"] == "online/q/kernel:0"  # a layer's weights by path
    assert flat["target.variables.2"] == "target/norm/gamma:0"
    assert flat["update_target.0"].startswith("AssignVariableOp")
    assert flat["train_op"] == agent.train_op.name
    assert len([p for p in flat if p.startswith("update_ops.")]) == 2  # moving averages
    # Only the input pipeline's Python-side state is left out, with the reason.
    assert list(spec.skipped) == ["iterator"]
    assert "a tf.data iterator" in spec.skipped["iterator"]


def test_saving_warns_once_listing_the_skipped_paths(agent: Agent) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = spec_for_save(agent)
    assert [type(w.message) for w in caught] == [ng.SkippedFieldsWarning]
    message = str(caught[0].message)
    assert message.startswith("1 field not recorded")
    assert "\n  iterator: tensorflow.python.data.ops.iterator_ops:Iterator: a tf.data" in message
    assert issubclass(ng.SkippedFieldsWarning, UserWarning)
    assert spec == ng.to_graph(agent)


def test_saving_refuses_a_model_that_would_save_nothing() -> None:
    with pytest.raises(ng.WalkError, match=r"^<root>: the model itself cannot be recorded \("):
        spec_for_save(threading.Lock())

    class Settings:
        def __init__(self) -> None:
            self.lr = 0.1
            self.lock = threading.Lock()

    with pytest.raises(
        ng.WalkError, match=r"^<root>: the model binds no tensor, op or variable.*skipped: lock"
    ):
        spec_for_save(Settings())


def test_no_warning_when_nothing_is_skipped(graph: tf.Graph) -> None:
    class Small:
        def __init__(self) -> None:
            self.x = tf1.placeholder(tf.float32, [], name="x")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spec_for_save(Small()).flatten() == {"x": "x:0"}


def _continue(agent: Any, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` training steps on fixed batches (fed, so the input position does not matter)."""
    probe = np.linspace(-1, 1, BATCH * OBS, dtype=np.float32).reshape(BATCH, OBS)
    for step in range(steps):
        batch = {
            agent.obs: probe * (step + 1),
            agent.action: np.arange(BATCH, dtype=np.int32) % ACTIONS,
            agent.reward: np.full(BATCH, 0.5, np.float32),
            agent.training: True,
        }
        agent.sess.run(agent.train_op, batch)
    agent.sess.run(agent.update_target)
    return agent.sess.run([agent.online.q, agent.target.q], {agent.obs: probe})


def test_rebuilt_model_continues_training_exactly(tmp_path: Path) -> None:
    graph, agent = _build()
    with graph.as_default():
        agent.train(2)
        spec = ng.to_graph(agent)
        meta = tf1.train.export_meta_graph()
        checkpoint = agent.saver.save(agent.sess, str(tmp_path / "agent"))
        expected = _continue(agent, 3)
    agent.sess.close()
    with tf.Graph().as_default() as fresh, tf1.Session() as sess:
        tf1.train.import_meta_graph(meta)
        rebuilt = ng.from_graph(ng.Spec.from_yaml(spec.to_yaml()), fresh, allow=ALLOW, session=sess)
        assert type(rebuilt) is Agent and type(rebuilt.online) is QNetwork
        assert rebuilt.sess is sess
        assert rebuilt.online.activation is tf.nn.relu
        assert rebuilt.hparams["gamma"] == np.float32(0.9)
        assert type(rebuilt.hparams["gamma"]) is np.float32
        assert isinstance(rebuilt.iterator, ng.SkippedField) and not rebuilt.iterator
        rebuilt.saver.restore(sess, checkpoint)  # the model's own Saver, on the new graph
        got = _continue(rebuilt, 3)
        again = ng.to_graph(rebuilt)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have, want)  # bit-identical
    assert again == spec  # the skipped iterator is written as skipped again


def test_fresh_process_without_model_code_gets_the_same_outputs(tmp_path: Path) -> None:
    graph, agent = _build()
    with graph.as_default():
        agent.train(1)
        (tmp_path / "spec.yaml").write_text(ng.to_graph(agent).to_yaml())
        agent.saver.save(agent.sess, str(tmp_path / "agent"))
        probe = np.ones((BATCH, OBS), np.float32)
        expected = agent.sess.run(agent.online.q, {agent.obs: probe})
    agent.sess.close()
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import numpy as np, tensorflow as tf
        import nestgraph as ng
        tf1 = tf.compat.v1
        d = {str(tmp_path)!r}
        with tf.Graph().as_default() as g, tf1.Session() as sess:
            tf1.train.import_meta_graph(d + "/agent.meta")
            spec = ng.Spec.from_yaml(open(d + "/spec.yaml").read())
            agent = ng.from_graph(spec, g, generic=True, session=sess)
            assert "test_realistic_models" not in sys.modules
            assert agent.nestgraph_class == "test_realistic_models:Agent"
            assert agent.sess is sess and isinstance(agent.online.head, ng.Node)
            agent.saver.restore(sess, d + "/agent")
            q = sess.run(agent.online.q, {{agent.obs: np.ones(({BATCH}, {OBS}), np.float32)}})
            np.save(d + "/q.npy", q)
        """
    )
    # Run from the temporary directory, so the test module (the model code) is not importable.
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    proc = run_python("-c", script, cwd=tmp_path, env={"PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr[-4000:]
    np.testing.assert_array_equal(np.load(tmp_path / "q.npy"), expected)


def test_bundle_of_a_plain_class_model_loads_back_as_the_model() -> None:
    graph, agent = _build()
    with graph.as_default():
        agent.train(1)
        probe = np.ones((BATCH, OBS), np.float32)
        expected = agent.sess.run(agent.online.q, {agent.obs: probe})
        with warnings.catch_warnings():
            # Bundle writers warn about the skipped iterator (see the test above).
            warnings.simplefilter("ignore", ng.SkippedFieldsWarning)
            blob = ng.dumps(agent, agent.sess)
    agent.sess.close()
    loaded, sess = ng.loads(blob, allow=ALLOW)
    with sess:
        assert type(loaded) is Agent  # no longer None
        assert type(loaded.target) is QNetwork
        got = sess.run(loaded.online.q, {loaded.obs: probe})
    np.testing.assert_array_equal(got, expected)


def test_one_network_of_the_agent_loads_through_the_index_as_through_the_full_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import bundle_members, sealed

    from nestgraph.bundle import _metagraph

    graph, agent = _build()
    with graph.as_default():
        agent.train(2)  # batch norm's moving averages move through UPDATE_OPS
        probe = np.ones((BATCH, OBS), np.float32)
        expected = agent.sess.run(agent.target.q, {agent.obs: probe})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ng.SkippedFieldsWarning)
            blob = ng.dumps(agent, agent.sess)
    agent.sess.close()
    without_index = sealed(
        [(n, d) for n, d in bundle_members(blob) if not n.startswith("subnets.")]
    )

    def outputs(data: bytes) -> tuple[np.ndarray, set[str], np.ndarray]:
        network, sess = ng.loads(data, subtree="target", allow=ALLOW)
        with sess:
            assert type(network) is QNetwork and network.activation is tf.nn.relu
            ops = {op.name for op in sess.graph.get_operations()}
            moving = [v for v in network.variables if "moving_mean" in v.name]
            return sess.run(network.q, {"IteratorGetNext:0": probe}), ops, sess.run(moving[0])

    full_q, full_ops, full_mean = outputs(without_index)
    real = _metagraph.prune_meta_graph
    monkeypatch.setattr(_metagraph, "prune_meta_graph", lambda *a: pytest.fail("pruned again"))
    q, ops, mean = outputs(blob)
    monkeypatch.setattr(_metagraph, "prune_meta_graph", real)
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(q, full_q)
    np.testing.assert_array_equal(mean, full_mean)
    assert ops == full_ops
    assert not any(name.startswith("online/") for name in ops)
