"""Small pieces the examples share, so each example shows only its own point.

``quiet_tensorflow`` imports TensorFlow without its start-up chatter on a
machine without a GPU (set ``NESTGRAPH_DEBUG=1`` to see it); ``Dense`` is the
layer the examples build their models from; ``synthetic_data`` their inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nestgraph.cli.terminal import quiet_tensorflow

tf = quiet_tensorflow()

import nestgraph as ng  # noqa: E402 - after TensorFlow, so its import is the quiet one

__all__ = ["Dense", "quiet_tensorflow", "synthetic_data", "tf"]

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
