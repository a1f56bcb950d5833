"""Serve a graph-mode model from TensorFlow 2, and ship one sub-network on its own.

1. Build an encoder and two heads (``cls``: 4-way classifier, ``aux``: 2-way)
   in a ``tf.Graph``, train a few steps, save one bundle with ``ng.save``.
2. ``ng.export_saved_model(model, session, dir, inputs={"x": "x"},
   outputs={"probs": "heads.cls.probs"})``: the signature names dotted spec
   paths, not tensor names. Plain TF2 eager code serves it,
   ``tf.saved_model.load(dir).signatures["serving_default"](x=tf.constant(...))``,
   and its numbers match the graph session's.
3. ``ng.export(model, session, "encoder.ng", subtree="encoder", freeze=True)``:
   a bundle of the encoder alone, its weights folded into constants. ``ng.load``
   gives back an ``Encoder`` in a graph with fewer ops and no variables, from a
   smaller file, computing the same features.

Run: ``python examples/serve_subnetwork.py [--out DIR] [--steps N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import Dense, build_and_train, synthetic_data, tf

import nestgraph as ng

tf1 = tf.compat.v1
FEATURES, WIDTH, LAYERS, CLASSES = 8, 16, 2, 4


class Encoder(ng.GraphConvertible):
    """The input placeholder and a stack of dense layers over it."""

    def __init__(self, x: Any, name: str) -> None:
        self.x = x
        with tf1.variable_scope(name):
            self.layers: list[Dense] = []
            for i in range(LAYERS):
                self.layers.append(Dense(x, WIDTH, f"layer_{i}"))
                x = self.layers[-1].out
            self.out = tf.identity(x, name="features")


class Head(ng.GraphConvertible):
    """A linear classifier over the features, with its softmax and loss."""

    def __init__(self, features: Any, labels: Any, classes: int, name: str) -> None:
        with tf1.variable_scope(name):
            self.dense = Dense(features, classes, "logits", relu=False)
            self.logits = self.dense.out
            self.probs = tf.nn.softmax(self.logits, name="probs")
            self.loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=self.logits),
                name="loss",
            )


class Model(ng.GraphConvertible):
    """Encoder, two heads, their summed loss and an Adam train op."""

    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, FEATURES], name="x")
        self.y = tf1.placeholder(tf.int64, [None], name="y")
        self.encoder = Encoder(self.x, "encoder")
        self.heads = {
            "cls": Head(self.encoder.out, self.y, CLASSES, "head_cls"),
            "aux": Head(self.encoder.out, tf.math.floormod(self.y, 2), 2, "head_aux"),
        }
        self.loss = tf.add_n([head.loss for head in self.heads.values()], name="loss")
        self.global_step = tf1.train.get_or_create_global_step()
        self.train_op = tf1.train.AdamOptimizer(0.01).minimize(
            self.loss, global_step=self.global_step, name="train"
        )


def directory_bytes(path: str) -> int:
    """The total size of the files under ``path``."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train, save, serve from TF2, export the encoder; print and return the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the outputs (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="nestgraph-serve-")
    os.makedirs(out, exist_ok=True)
    bundle = os.path.join(out, "model.ng")
    served = os.path.join(out, "served")
    encoder_bundle = os.path.join(out, "encoder.ng")

    print("== 1. build, train a few steps and save the whole model")
    graph, model, session, loss = build_and_train(Model, args.steps, FEATURES, CLASSES)
    full_ops = len(graph.get_operations())
    ng.save(model, session, bundle)
    bundle_bytes = os.path.getsize(bundle)
    print(f"   {args.steps} steps, loss {loss:.4f}; {full_ops} ops; model.ng: {bundle_bytes} bytes")

    x_test, _ = synthetic_data(16, FEATURES, CLASSES, seed=1)
    expected_probs, expected_features = session.run(
        [model.heads["cls"].probs, model.encoder.out], {model.x: x_test}
    )

    print("\n== 2. export a SavedModel whose signature is named by spec paths")
    inputs, outputs = {"x": "x"}, {"probs": "heads.cls.probs"}
    ng.export_saved_model(model, session, served, inputs=inputs, outputs=outputs)
    served_bytes = directory_bytes(served)
    print(f"   ng.export_saved_model(..., inputs={inputs}, outputs={outputs})")
    print(f"   {served}: {served_bytes} bytes")
    print("   served from TF2 eager code:")
    print('     tf.saved_model.load(dir).signatures["serving_default"](x=tf.constant(x))')
    serving = tf.saved_model.load(served).signatures["serving_default"]
    answer = serving(x=tf.constant(x_test))
    served_probs = answer["probs"].numpy()
    served_identical = bool(np.array_equal(served_probs, expected_probs))
    served_diff = max_abs_diff(served_probs, expected_probs)
    print(f"   -> {sorted(answer)} of shape {tuple(served_probs.shape)}")
    print(f"   max |served - session| = {served_diff:.3g}; bit-identical: {served_identical}")
    if not np.allclose(served_probs, expected_probs, rtol=0, atol=1e-6):
        raise SystemExit("serve_subnetwork: the SavedModel disagrees with the graph session")

    print("\n== 3. export the encoder alone, frozen, and load it back")
    ng.export(model, session, encoder_bundle, subtree="encoder", freeze=True)
    encoder_bytes = os.path.getsize(encoder_bundle)
    encoder, encoder_session = ng.load(encoder_bundle)
    encoder_graph = encoder_session.graph
    encoder_ops = len(encoder_graph.get_operations())
    encoder_variables = len(encoder_graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES))
    features = encoder_session.run(encoder.out, {encoder.x: x_test})
    encoder_session.close()
    features_identical = bool(np.array_equal(features, expected_features))
    features_diff = max_abs_diff(features, expected_features)
    has_heads = any(op.name.startswith("head_") for op in encoder_graph.get_operations())
    print('   ng.export(model, session, "encoder.ng", subtree="encoder", freeze=True)')
    print(f"   encoder.ng: {encoder_bytes} bytes (model.ng: {bundle_bytes})")
    print(f"   ng.load('encoder.ng') -> {type(encoder).__qualname__}, {len(encoder.layers)} layers")
    print(
        f"   its graph: {encoder_ops} ops (full model: {full_ops}), {encoder_variables} variables, "
        f"ops of a head: {has_heads}"
    )
    w = encoder.layers[0].w
    print(f"   its layers[0].w is now a tensor of a {w.op.type} op, {w.name}")
    print(f"   max |features - session| = {features_diff:.3g}; bit-identical: {features_identical}")
    if not (encoder_bytes < bundle_bytes and encoder_ops < full_ops and not has_heads):
        raise SystemExit("serve_subnetwork: the exported encoder is not smaller than the model")
    if not np.allclose(features, expected_features, rtol=0, atol=1e-6):
        raise SystemExit("serve_subnetwork: the exported encoder computes other features")
    session.close()

    return {
        "out": out,
        "steps": args.steps,
        "loss": float(loss),
        "full_ops": full_ops,
        "bundle_bytes": bundle_bytes,
        "served_bytes": served_bytes,
        "served_keys": sorted(answer),
        "served_max_abs_diff": served_diff,
        "served_identical": served_identical,
        "encoder_class": type(encoder).__name__,
        "encoder_bytes": encoder_bytes,
        "encoder_ops": encoder_ops,
        "encoder_variables": encoder_variables,
        "encoder_has_heads": has_heads,
        "encoder_w_op": w.op.type,
        "features_max_abs_diff": features_diff,
        "features_identical": features_identical,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
