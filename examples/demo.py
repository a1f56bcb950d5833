"""End-to-end demo (``make demo``).

1. Build a nested model: an input, a list of towers each holding a list of
   dense layers, a dict of heads, a loss and a train op.
2. Train it a few steps on synthetic data.
3. Save one bundle (graph + weights + spec) and show its spec.
4. In a fresh Python process that has none of this file's code, load only the
   ``heads.digit`` sub-network from the bundle and check that its predictions
   are bit-identical to the ones made here.

Run: ``python examples/demo.py [--out DIR]`` (``NESTGRAPH_DEBUG=1`` shows
TensorFlow's own start-up log, which the examples keep off the terminal).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import numpy as np
from _common import Dense, build_and_train, synthetic_data, tf

import nestgraph as ng

tf1 = tf.compat.v1
FEATURES, CLASSES, TOWERS, LAYERS, WIDTH = 8, 4, 3, 2, 16


class Tower(ng.GraphConvertible):
    def __init__(self, x: tf.Tensor, name: str) -> None:
        with tf1.variable_scope(name):
            self.layers = []
            for i in range(LAYERS):
                self.layers.append(Dense(x, WIDTH, f"layer_{i}"))
                x = self.layers[-1].out
        self.out = x


class Head(ng.GraphConvertible):
    def __init__(self, x: tf.Tensor, classes: int, name: str) -> None:
        with tf1.variable_scope(name):
            self.logits = Dense(x, classes, "logits", relu=False).out
            self.probs = tf.nn.softmax(self.logits, name="probs")


class Model(ng.GraphConvertible):
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, FEATURES], name="x")
        self.y = tf1.placeholder(tf.int64, [None], name="y")
        self.learning_rate = 0.05
        self.towers = [Tower(self.x, f"tower_{i}") for i in range(TOWERS)]
        merged = tf.add_n([t.out for t in self.towers], name="merged")
        self.heads = {
            "digit": Head(merged, CLASSES, "head_digit"),
            "parity": Head(merged, 2, "head_parity"),
        }
        self.best_tower = self.towers[0]  # shared: written once, then "ref towers.0"
        labels = self.heads["digit"].logits
        self.loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.y, logits=labels),
            name="loss",
        )
        self.global_step = tf1.train.get_or_create_global_step()
        optimizer = tf1.train.AdamOptimizer(self.learning_rate)
        self.train_op = optimizer.minimize(self.loss, global_step=self.global_step, name="train")


RESTORE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import nestgraph as ng

    bundle, inputs_path = sys.argv[1], sys.argv[2]
    # No model code here: the classes in the spec cannot be imported, so
    # generic=True rebuilds them as ng.Node objects holding the same fields.
    head, session = ng.load(bundle, subtree="heads.digit", generic=True)
    x = np.load(inputs_path)
    graph = session.graph
    probs = session.run(head.probs, {graph.get_tensor_by_name("x:0"): x})
    print(json.dumps({
        "class": type(head).__name__,
        "stands_for": head.nestgraph_class,
        "ops_in_graph": len(graph.get_operations()),
        "probs": probs.tolist(),
    }))
    """
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the bundle (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="nestgraph-demo-")
    os.makedirs(out, exist_ok=True)
    bundle = os.path.join(out, "model.ng")

    print("== 1. build and train a nested model")
    graph, model, session, loss = build_and_train(Model, args.steps, FEATURES, CLASSES, n=512)
    print(
        f"trained {args.steps} steps, loss {loss:.4f}, ops in graph: {len(graph.get_operations())}"
    )

    print(f"\n== 2. save one bundle: {bundle}")
    ng.save(model, session, bundle)
    print(f"{os.path.getsize(bundle)} bytes")

    print("\n== 3. its spec")
    spec = ng.to_graph(model)
    print(spec.to_yaml())

    print("== 4. restore heads.digit alone in a fresh process with no model code")
    x_test, _ = synthetic_data(8, FEATURES, CLASSES, seed=1)
    expected = session.run(model.heads["digit"].probs, {model.x: x_test})
    inputs_path = os.path.join(out, "inputs.npy")
    np.save(inputs_path, x_test)
    child = subprocess.run(
        [sys.executable, "-c", RESTORE_SCRIPT, bundle, inputs_path],
        check=True,
        capture_output=True,
        text=True,
    )
    restored = json.loads(child.stdout.strip().splitlines()[-1])
    got = np.asarray(restored["probs"], dtype=np.float32)
    identical = bool(np.array_equal(got, expected))
    print(
        f"restored a {restored['class']} standing for {restored['stands_for']}, "
        f"in a graph of {restored['ops_in_graph']} ops (full model: {len(graph.get_operations())})"
    )
    print(f"predictions identical to the original process: {identical}")
    if not identical:
        raise SystemExit("restored predictions differ")
    session.close()
    return {
        "bundle": bundle,
        "identical": identical,
        "sub_ops": restored["ops_in_graph"],
        "full_ops": len(graph.get_operations()),
        "spec_yaml": spec.to_yaml(),
    }


if __name__ == "__main__":
    main()
