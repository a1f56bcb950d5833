"""The seed article's MNIST model, made composite, saved and rebuilt with nestgraph.

The model is a tree: a list of conv blocks (each with its conv and pool outputs
and kernel variables), a shared dense feature layer, and a dict of heads (a
10-way ``digit`` classifier and a 2-way ``parity`` head). It is written with
``tf.compat.v1.layers`` like the seed, trained for a few steps on synthetic
28x28 digit images, and saved three ways: a checkpoint, a meta graph and the
nestgraph spec (YAML). Then, in a fresh graph, it is rebuilt from those three
files alone, without running any model-building code, and evaluated again: the
accuracy is the same.

Run::

    python examples/composite_mnist.py [--out DIR] [--steps N]

The seed usage is kept unchanged::

    spec = model.to_graph(model.__dict__)                      # after training
    ...
    tf.compat.v1.train.import_meta_graph(meta).restore(sess, checkpoint)
    model = MNISTModel()                                       # builds nothing
    model.from_graph(spec, tf.compat.v1.get_default_graph())

Class paths in the spec name the module the classes live in: ``__main__:MNISTModel``
when this file runs as a script, ``composite_mnist:MNISTModel`` when it is imported
(as the tests do).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from typing import Any

# tf.compat.v1.layers needs Keras 2 (tf-keras); this must happen before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np
from _common import tf

import nestgraph as ng

tf1 = tf.compat.v1
# The seed is written with tf.compat.v1.layers on purpose; its deprecation notices are noise here.
warnings.filterwarnings("ignore", message=r"`tf\.layers\.", category=UserWarning)

IMAGE_SIZE = 28
GLYPH_SIZE = 8
CLASSES = 10


# --------------------------------------------------------------------------- data


def make_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic "digits": ``count`` noisy 28x28 images and their labels (0-9).

    Each class is a fixed random 8x8 glyph (the same for every seed), drawn at a
    random position near the centre over Gaussian noise, so a small conv net can
    learn it in a few dozen steps. Deterministic for a given ``seed``.
    """
    glyphs = np.random.default_rng(1234).random((CLASSES, GLYPH_SIZE, GLYPH_SIZE)) < 0.45
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, count)
    images = rng.normal(0.0, 0.2, (count, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    corners = rng.integers(8, IMAGE_SIZE - GLYPH_SIZE - 8 + 1, (count, 2))
    for image, label, (row, col) in zip(images, labels, corners, strict=True):
        image[row : row + GLYPH_SIZE, col : col + GLYPH_SIZE] += glyphs[label]
    return images[..., None], labels.astype(np.int64)


# --------------------------------------------------------------------------- model


def _variable(scope: str, name: str) -> Any:
    """The variable ``scope/name`` that a ``tf.compat.v1.layers`` call created."""
    with tf1.variable_scope(scope, reuse=True):
        return tf1.get_variable(name)


class ConvBlock(ng.GraphConvertible):
    """3x3 conv (ReLU) then 2x2 max-pool, with its kernel and bias variables."""

    def __init__(self, inputs: Any, filters: int, name: str) -> None:
        with tf1.variable_scope(name):
            self.conv = tf1.layers.conv2d(
                inputs, filters, 3, padding="same", activation=tf.nn.relu, name="conv"
            )
            self.pool = tf1.layers.max_pooling2d(self.conv, 2, 2, name="pool")
        self.kernel = _variable(name, "conv/kernel")
        self.bias = _variable(name, "conv/bias")
        self.filters = filters


class Head(ng.GraphConvertible):
    """A dense classifier over the shared features, with its own loss and accuracy."""

    def __init__(self, features: Any, labels: Any, classes: int, name: str) -> None:
        with tf1.variable_scope(name):
            self.logits = tf1.layers.dense(features, classes, name="logits")
            self.probs = tf.nn.softmax(self.logits, name="probs")
            self.prediction = tf.argmax(self.logits, axis=1, name="prediction")
            self.loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=self.logits),
                name="loss",
            )
            hits = tf.cast(tf.equal(self.prediction, labels), tf.float32)
            self.accuracy = tf.reduce_mean(hits, name="accuracy")
        self.kernel = _variable(name, "logits/kernel")
        self.classes = classes


class MNISTModel(ng.GraphConvertible):
    """Conv blocks, a feature layer and named heads, trained together with Adam.

    ``MNISTModel()`` builds nothing (an empty model for ``from_graph`` to fill);
    ``MNISTModel(build=True)`` builds the graph in the current default graph.
    """

    def __init__(
        self,
        build: bool = False,
        *,
        filters: Sequence[int] = (8, 16),
        learning_rate: float = 3e-3,
    ) -> None:
        if build:
            self._build(tuple(filters), learning_rate)

    def _build(self, filters: tuple[int, ...], learning_rate: float) -> None:
        self.x = tf1.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 1], name="x")
        self.y = tf1.placeholder(tf.int64, [None], name="y")
        self.blocks: list[ConvBlock] = []
        h = self.x
        for i, n in enumerate(filters):
            block = ConvBlock(h, n, name=f"block_{i}")
            self.blocks.append(block)
            h = block.pool
        flat = tf1.layers.flatten(h, name="flatten")
        self.features = tf1.layers.dense(flat, 64, activation=tf.nn.relu, name="features")
        self.heads = {
            "digit": Head(self.features, self.y, CLASSES, name="digit"),
            "parity": Head(self.features, tf.math.floormod(self.y, 2), 2, name="parity"),
        }
        # The same object under a second name: the spec writes it once, as a ref.
        self.classifier = self.heads["digit"]
        self.loss = tf.add_n([head.loss for head in self.heads.values()], name="loss")
        self.global_step = tf1.train.get_or_create_global_step()
        self.learning_rate = learning_rate
        self.train_op = tf1.train.AdamOptimizer(learning_rate).minimize(
            self.loss, global_step=self.global_step, name="train"
        )
        self.accuracy = self.classifier.accuracy


# --------------------------------------------------------------------------- train, evaluate


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"composite_mnist: {message}")


def evaluate(
    session: Any, model: MNISTModel, images: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Digit and parity accuracy and the total loss on one batch, by attribute access only."""
    feed = {model.x: images, model.y: labels}
    digit, parity, loss = session.run(
        [model.heads["digit"].accuracy, model.heads["parity"].accuracy, model.loss], feed
    )
    return {"digit_accuracy": float(digit), "parity_accuracy": float(parity), "loss": float(loss)}


def train_and_save(
    out_dir: str,
    steps: int,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    batch_size: int = 64,
) -> tuple[ng.Spec, dict[str, float], str]:
    """Build, train and save; return the spec, the test metrics and the checkpoint path."""
    images, labels = train
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        model = MNISTModel(build=True)
        saver = tf1.train.Saver()
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            for step in range(steps):
                start = (step * batch_size) % (len(images) - batch_size)
                batch = slice(start, start + batch_size)
                session.run(model.train_op, {model.x: images[batch], model.y: labels[batch]})
            metrics = evaluate(session, model, *test)
            # The seed's line, unchanged: the structure of every field of the model.
            spec = model.to_graph(model.__dict__)
            checkpoint = saver.save(
                session, os.path.join(out_dir, "model"), global_step=model.global_step
            )
    ng.save_spec(spec, os.path.join(out_dir, "model.yaml"))
    return spec, metrics, checkpoint


def rebuild_and_evaluate(
    out_dir: str, checkpoint: str, test: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """In a fresh graph: meta graph + checkpoint + YAML spec -> model -> metrics.

    No model-building code runs: the graph has the same number of ops after the
    model is rebuilt and evaluated as right after ``import_meta_graph``.
    """
    graph = tf.Graph()
    with graph.as_default():
        saver = tf1.train.import_meta_graph(checkpoint + ".meta")
        ops_after_import = len(graph.get_operations())
        spec = ng.load_spec(os.path.join(out_dir, "model.yaml"))
        model = MNISTModel()
        model.from_graph(spec, tf1.get_default_graph())
        # One head alone, as a standalone object: only its part of the spec is bound.
        parity = ng.from_graph(spec, graph, subtree="heads.parity")
        with tf1.Session(graph=graph) as session:
            saver.restore(session, checkpoint)
            metrics: dict[str, Any] = evaluate(session, model, *test)
            metrics["parity_subtree_accuracy"] = float(
                session.run(parity.accuracy, {model.x: test[0], model.y: test[1]})
            )
            metrics["global_step"] = int(session.run(model.global_step))
        _require(model.classifier is model.heads["digit"], "the ref must give back one object")
        _require(len(graph.get_operations()) == ops_after_import, "rebuilding added ops")
        metrics["ops"] = ops_after_import
        metrics["learning_rate"] = model.learning_rate
        metrics["blocks"] = len(model.blocks)
    return metrics


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train, save, rebuild and compare; print the spec and the numbers; return them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", help="directory for the checkpoint, meta graph and spec")
    parser.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    parser.add_argument("--quiet", action="store_true", help="do not print the spec")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    train = make_digits(4096, seed=1)
    test = make_digits(1000, seed=2)
    with tempfile.TemporaryDirectory(prefix="composite_mnist_") as scratch:
        out_dir = args.out or scratch
        os.makedirs(out_dir, exist_ok=True)
        spec, before, checkpoint = train_and_save(out_dir, args.steps, train, test)
        if not args.quiet:
            print(spec.to_yaml())
        after = rebuild_and_evaluate(out_dir, checkpoint, test)

    for key in ("digit_accuracy", "parity_accuracy"):
        print(f"{key}: {before[key]:.4f} before saving, {after[key]:.4f} after rebuilding")
    for key in ("digit_accuracy", "parity_accuracy"):
        _require(before[key] == after[key], f"{key} changed across save and rebuild")
    _require(
        after["parity_subtree_accuracy"] == after["parity_accuracy"],
        "the parity head rebuilt alone scores differently",
    )
    result: dict[str, Any] = {
        "steps": args.steps,
        "before": before,
        "after": after,
        "bindings": len(spec.flatten()),
        "paths": sorted(spec.flatten()),
        "skipped": spec.skipped,
        "out": args.out,
        "seconds": round(time.perf_counter() - started, 3),
    }
    print(
        f"{result['bindings']} bindings, {after['ops']} ops, "
        f"{args.steps} steps, {result['seconds']:.1f} s"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
