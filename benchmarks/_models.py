"""The tower model the load benchmark and the bundle tests build.

``towers`` independent stacks of ``layers`` dense ReLU layers, each ``width``
wide, all fed from one input, trained together with Adam. The default size (40
towers x 8 layers x 64 wide) is the benchmark's; the tests build tiny ones.

Everything is plain ``tf.compat.v1`` graph code (``get_variable`` and
``matmul``), built into the current default graph. Build it inside
``with tf.Graph().as_default():``.

>>> import tensorflow as tf
>>> with tf.Graph().as_default():
...     model = build_tower_model(towers=2, layers=1, width=4)
>>> len(model.towers), model.towers[1].layers[0].w.name
(2, 'tower_1/layer_0/w:0')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

__all__ = ["Dense", "Tower", "TowerModel", "batch", "build_tower_model", "single_thread_config"]


@dataclass
class Dense:
    """One layer: ``out = relu(inputs @ w + b)``."""

    w: Any
    b: Any
    out: Any


@dataclass
class Tower:
    """A stack of dense layers and its own squared-error loss."""

    layers: list[Dense]
    out: Any
    loss: Any


@dataclass
class TowerModel:
    """All towers, their summed loss and the Adam training step."""

    x: Any
    y: Any
    towers: list[Tower]
    loss: Any
    global_step: Any
    train_op: Any


def build_tower_model(
    towers: int = 40,
    layers: int = 8,
    width: int = 64,
    *,
    seed: int = 0,
    learning_rate: float = 1e-3,
    devices: Sequence[str] | None = None,
) -> TowerModel:
    """Build the model in the default graph.

    Args:
      towers, layers, width: the model's size.
      seed: graph-level random seed, so two processes start from the same weights.
      learning_rate: Adam's step size.
      devices: if given, tower ``i`` is placed on ``devices[i % len(devices)]``.
    """
    tf1.set_random_seed(seed)
    x = tf1.placeholder(tf.float32, [None, width], name="x")
    y = tf1.placeholder(tf.float32, [None, width], name="y")
    tower_list = []
    for t in range(towers):
        device = devices[t % len(devices)] if devices else None
        with tf.device(device), tf1.variable_scope(f"tower_{t}"):
            h = x
            dense_list = []
            for i in range(layers):
                with tf1.variable_scope(f"layer_{i}"):
                    w = tf1.get_variable(
                        "w",
                        [width, width],
                        initializer=tf1.glorot_uniform_initializer(),
                    )
                    b = tf1.get_variable("b", [width], initializer=tf1.zeros_initializer())
                    h = tf.nn.relu(tf.matmul(h, w) + b)
                dense_list.append(Dense(w=w, b=b, out=h))
            loss = tf.reduce_mean(tf.square(h - y), name="loss")
        tower_list.append(Tower(layers=dense_list, out=h, loss=loss))
    total = tf.add_n([tower.loss for tower in tower_list], name="loss")
    global_step = tf1.train.get_or_create_global_step()
    train_op = tf1.train.AdamOptimizer(learning_rate).minimize(
        total, global_step=global_step, name="train"
    )
    return TowerModel(
        x=x, y=y, towers=tower_list, loss=total, global_step=global_step, train_op=train_op
    )


def batch(width: int, step: int, rows: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic training batch ``(x, y)`` for step ``step``."""
    rng = np.random.default_rng(1000 + step)
    x = rng.standard_normal((rows, width)).astype(np.float32)
    y = np.tanh(x[:, ::-1]).astype(np.float32)
    return x, y


def single_thread_config(**kwargs: Any) -> Any:
    """A ``ConfigProto`` whose results do not depend on thread scheduling."""
    return tf1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1, **kwargs)
