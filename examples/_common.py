"""Small pieces the examples share, so each example shows only its own point.

``quiet_tensorflow`` imports TensorFlow without its start-up chatter on a
machine without a GPU (set ``NESTGRAPH_DEBUG=1`` to see it); ``Dense`` is the
layer the examples build their models from; ``synthetic_data`` their inputs;
``build_and_train`` makes a model in a new graph and trains it a few steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nestgraph.cli.terminal import quiet_tensorflow

tf = quiet_tensorflow()

import nestgraph as ng  # noqa: E402 - after TensorFlow, so its import is the quiet one

__all__ = ["Dense", "build_and_train", "quiet_tensorflow", "synthetic_data", "tf"]

tf1 = tf.compat.v1


class Dense(ng.GraphConvertible):
    """``x @ w + b`` with its variables, followed by a ReLU unless ``relu=False``."""

    def __init__(self, x: Any, units: int, name: str, relu: bool = True) -> None:
        with tf1.variable_scope(name):
            self.w = tf1.get_variable("w", [x.shape[-1], units])
            self.b = tf1.get_variable("b", [units], initializer=tf1.zeros_initializer())
            y = tf.matmul(x, self.w) + self.b
            self.out = tf.nn.relu(y) if relu else y


def synthetic_data(n: int, features: int, classes: int, seed: int) -> tuple[Any, Any]:
    """``n`` normal inputs, labelled by which of the first ``classes`` features is largest."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, x[:, :classes].argmax(axis=1).astype(np.int64)


def build_and_train(
    make_model: Callable[[], Any], steps: int, features: int, classes: int, n: int = 256
) -> tuple[Any, Any, Any, float]:
    """``(graph, model, session, last loss)``: ``make_model()`` in a new graph, trained.

    The model needs ``x``, ``y``, ``loss`` and ``train_op`` fields; the seed is fixed,
    so every run (and every example) starts from the same weights and data.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        model = make_model()
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    x, y = synthetic_data(n, features, classes, seed=0)
    loss = float("nan")
    for _ in range(steps):
        _, loss = session.run([model.train_op, model.loss], {model.x: x, model.y: y})
    return graph, model, session, float(loss)
