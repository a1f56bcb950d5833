"""Restore a saved model in a process that has none of the code that built it.

1. Here: build a small model from ``ng.GraphConvertible`` classes (an encoder,
   a list of dense layers, two heads), train it a few steps and save one bundle.
2. In a child process running ``examples/_restore_child.py`` (which imports only
   ``nestgraph`` and ``numpy``, in isolated mode so this directory is not even on
   its ``sys.path``): ``ng.load(bundle, generic=True)`` gives back the whole model
   as ``ng.Node`` objects, and its predictions are bit-identical to the ones made
   here (``np.array_equal``, not ``allclose``).
3. In the same child: ``ng.load(bundle, subtree="heads.cls", generic=True)``
   imports only the ops and variables that head needs. Its graph holds fewer
   ops, and it gives the same numbers.

Run: ``python examples/restore_without_code.py [--out DIR] [--steps N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import Dense, build_and_train, synthetic_data, tf

import nestgraph as ng

tf1 = tf.compat.v1
FEATURES, WIDTH, LAYERS, CLASSES = 6, 16, 2, 3
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_restore_child.py")


class Encoder(ng.GraphConvertible):
    """A stack of dense layers."""

    def __init__(self, x: Any, name: str) -> None:
        with tf1.variable_scope(name):
            self.layers: list[Dense] = []
            for i in range(LAYERS):
                self.layers.append(Dense(x, WIDTH, f"layer_{i}"))
                x = self.layers[-1].out
        self.out = x


class Head(ng.GraphConvertible):
    """A linear layer over the encoder's output, plus a softmax."""

    def __init__(self, features: Any, units: int, name: str) -> None:
        with tf1.variable_scope(name):
            self.dense = Dense(features, units, "dense", relu=False)
            self.logits = self.dense.out
            self.probs = tf.nn.softmax(self.logits, name="probs")
        self.units = units


class Model(ng.GraphConvertible):
    """Input, encoder, two heads, a loss and a train op."""

    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, FEATURES], name="x")
        self.y = tf1.placeholder(tf.int64, [None], name="y")
        self.encoder = Encoder(self.x, "encoder")
        self.heads = {
            "cls": Head(self.encoder.out, CLASSES, "head_cls"),
            "aux": Head(self.encoder.out, 2, "head_aux"),
        }
        cls_loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=self.y, logits=self.heads["cls"].logits
            )
        )
        aux_loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.math.floormod(self.y, 2), logits=self.heads["aux"].logits
            )
        )
        self.loss = tf.add(cls_loss, aux_loss, name="loss")
        self.train_op = tf1.train.AdamOptimizer(0.01).minimize(self.loss, name="train")


def run_child(bundle: str, inputs: str, outputs: str) -> dict[str, Any]:
    """Run the code-free restore script; relay its narration; return its result line."""
    # -I: isolated mode. This directory is not on the child's sys.path, so even an
    # accidental ``import restore_without_code`` there would fail.
    child = subprocess.run(
        [sys.executable, "-I", CHILD, bundle, inputs, outputs],
        check=False,
        capture_output=True,
        text=True,
    )
    if child.returncode != 0:
        raise SystemExit(f"the child process failed:\n{child.stdout}\n{child.stderr[-3000:]}")
    lines = child.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(f"   child | {line}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Build, train, save; restore in a code-free child; compare; return the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the bundle (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="nestgraph-restore-")
    os.makedirs(out, exist_ok=True)
    bundle = os.path.join(out, "model.ng")

    print("== 1. build the model from this file's classes and train it")
    graph, model, session, loss = build_and_train(Model, args.steps, FEATURES, CLASSES)
    full_ops = len(graph.get_operations())
    print(f"   trained {args.steps} steps, loss {loss:.4f}; the graph has {full_ops} ops")
    spec = ng.to_graph(model)
    print(f"   the spec binds {len(spec.flatten())} names; root class {spec.to_dict()['class']}")

    print(f"\n== 2. save one bundle (graph + weights + spec): {bundle}")
    ng.save(model, session, bundle)
    saved_ops = len(graph.get_operations())
    print(f"   {os.path.getsize(bundle)} bytes; the graph now has {saved_ops} ops (with the Saver")
    print("   ng.save added, so that plain tf.compat.v1.train.import_meta_graph can restore it)")

    x_test, _ = synthetic_data(8, FEATURES, CLASSES, seed=1)
    expected = session.run(model.heads["cls"].probs, {model.x: x_test})
    session.close()
    inputs_path = os.path.join(out, "inputs.npy")
    outputs_path = os.path.join(out, "outputs.npz")
    np.save(inputs_path, x_test)
    print(f"   predictions on {len(x_test)} test rows made here, kept for comparison")

    print("\n== 3. a fresh process with no model code: python -I examples/_restore_child.py")
    child = run_child(bundle, inputs_path, outputs_path)
    with np.load(outputs_path) as restored:
        got_full, got_sub = restored["full"], restored["sub"]

    print("\n== 4. compare, back in this process")
    full_identical = bool(np.array_equal(got_full, expected))
    sub_identical = bool(np.array_equal(got_sub, expected))
    print(f"   whole model restored generically: predictions bit-identical: {full_identical}")
    print(
        f"   heads.cls restored alone ({child['sub_ops']} ops instead of {child['full_ops']}): "
        f"predictions bit-identical: {sub_identical}"
    )
    if not (full_identical and sub_identical):
        raise SystemExit("restored predictions differ from the original ones")
    if not child["sub_ops"] < child["full_ops"]:
        raise SystemExit("the sub-network's graph is not smaller than the full one")
    return {
        "bundle": bundle,
        "bundle_bytes": os.path.getsize(bundle),
        "original_ops": full_ops,
        "saved_ops": saved_ops,
        "full_ops": child["full_ops"],
        "sub_ops": child["sub_ops"],
        "full_identical": full_identical,
        "sub_identical": sub_identical,
        "child": child,
        "expected": expected.tolist(),
        "bindings": len(spec.flatten()),
    }


if __name__ == "__main__":
    main(sys.argv[1:])
