"""Save and restore a model written the way TF1 code is written, without changing it.

``Policy`` below is plain TF1 code: no nestgraph base class, a session field, a
``Saver`` field, NumPy hyper-parameters, a ``tf.compat.v1.layers`` layer
object and an activation function field.

1. Here: build it, train it a few steps in its own session, ``ng.save`` it.
2. In a fresh process (this file again, with ``--child``): ``ng.load`` gives
   back a ``Policy`` whose fields are the same kinds of objects (its
   ``session`` is the loaded session), with bit-identical predictions; it
   then trains on under ``MonitoredTrainingSession`` with
   ``ng.BundleSaverHook``, which writes rotated ``model-<step>.ng`` bundles,
   and ``ng.latest_bundle`` finds the newest.

Run: ``python examples/existing_code.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

# tf.compat.v1.layers needs Keras 2 (tf-keras); this must happen before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np
from _common import synthetic_data, tf

import nestgraph as ng

tf1 = tf.compat.v1
# Written with tf.compat.v1.layers on purpose; their deprecation notices are noise here.
warnings.filterwarnings("ignore", message=r"`tf\.layers\.", category=UserWarning)
FEATURES, ACTIONS, STEPS = 4, 3, 5
# The model's classes, and the one TensorFlow function its activation field holds.
ALLOW = ["existing_code.*", "tensorflow.python.ops.gen_math_ops.tanh"]


class Policy:
    """A small policy network, as TF1 code in the wild writes one."""

    def __init__(self, graph: Any) -> None:
        self.learning_rate = np.float32(0.1)
        self.gamma = np.float64(0.99)
        self.activation = tf.nn.tanh
        with graph.as_default():
            self.x = tf1.placeholder(tf.float32, [None, FEATURES], name="x")
            self.y = tf1.placeholder(tf.int64, [None], name="y")
            self.hidden = tf1.layers.Dense(8, activation=self.activation, name="hidden")
            self.logits = tf1.layers.dense(self.hidden(self.x), ACTIONS, name="logits")
            self.loss = tf1.losses.sparse_softmax_cross_entropy(self.y, self.logits)
            self.global_step = tf1.train.get_or_create_global_step()
            self.train_op = tf1.train.GradientDescentOptimizer(self.learning_rate).minimize(
                self.loss, global_step=self.global_step
            )
            self.saver = tf1.train.Saver()
            self.session = tf1.Session(graph=graph)
            self.session.run(tf1.global_variables_initializer())

    def train(self, x: Any, y: Any, steps: int) -> float:
        loss = float("nan")
        for _ in range(steps):
            _, loss = self.session.run([self.train_op, self.loss], {self.x: x, self.y: y})
        return float(loss)

    def act(self, x: Any) -> Any:
        return self.session.run(self.logits, {self.x: x})


def parent(out: str) -> dict[str, Any]:
    bundle = os.path.join(out, "policy.ng")
    print("== 1. build the unchanged TF1 model, train it, ng.save it")
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
    policy = Policy(graph)
    x, y = synthetic_data(64, FEATURES, ACTIONS, seed=0)
    print(f"   trained {STEPS} steps, loss {policy.train(x, y, STEPS):.4f}")
    ng.save(policy, policy.session, bundle)
    expected = policy.act(x[:8])
    np.save(os.path.join(out, "inputs.npy"), x[:8])
    np.save(os.path.join(out, "expected.npy"), expected)
    print(f"   {bundle}: {os.path.getsize(bundle)} bytes")
    print("\n== 2. a fresh process: python examples/existing_code.py --child")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", out],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the child failed:\n{proc.stdout}\n{proc.stderr}")
    lines = proc.stdout.splitlines()
    for line in lines[:-1]:
        print(f"   child | {line}")
    child: dict[str, Any] = json.loads(lines[-1])
    return {"bundle": bundle, "child": child}


def child(out: str) -> dict[str, Any]:
    policy, session = ng.load(os.path.join(out, "policy.ng"), allow=ALLOW)
    x = np.load(os.path.join(out, "inputs.npy"))
    identical = bool(np.array_equal(policy.act(x), np.load(os.path.join(out, "expected.npy"))))
    fields = {
        "class": type(policy).__qualname__,
        "session_is_loaded": policy.session is session,
        "saver": type(policy.saver).__name__,
        "learning_rate": repr(policy.learning_rate),
        "activation_is_tanh": policy.activation is tf.nn.tanh,
        "hidden": type(policy.hidden).__name__,
    }
    print(f"ng.load -> {fields['class']}; predictions bit-identical: {identical}")
    print(f"fields: {fields}")
    if not (identical and fields["session_is_loaded"] and fields["activation_is_tanh"]):
        raise SystemExit("the restored model differs from the saved one")
    start = int(session.run(policy.global_step))
    graph = session.graph
    variables = graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    restored = list(zip(variables, session.run(variables), strict=True))
    run_dir = os.path.join(out, "run")
    with graph.as_default():
        hook = ng.BundleSaverHook(policy, run_dir, save_steps=2, max_to_keep=2)
        # The monitored session starts from the loaded values, not from the initializers.
        scaffold = tf1.train.Scaffold(
            init_fn=lambda _, sess: [v.load(value, sess) for v, value in restored]
        )
        xs, ys = synthetic_data(64, FEATURES, ACTIONS, seed=0)
        with tf1.train.MonitoredTrainingSession(
            hooks=[hook], scaffold=scaffold, log_step_count_steps=None
        ) as monitored:
            for _ in range(STEPS):
                monitored.run(policy.train_op, {policy.x: xs, policy.y: ys})
    latest = ng.latest_bundle(run_dir)
    assert latest is not None
    print(f"trained {STEPS} more steps under MonitoredTrainingSession with ng.BundleSaverHook")
    print(f"bundles kept: {sorted(os.listdir(run_dir))}; latest: {os.path.basename(latest)}")
    again, again_session = ng.load(latest, allow=ALLOW)
    step = int(again_session.run(again.global_step))
    again_session.close()
    session.close()
    return {
        **fields,
        "identical": identical,
        "start_step": start,
        "latest": os.path.basename(latest),
        "latest_step": step,
        "kept": sorted(os.listdir(run_dir)),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the bundles (default: a temporary one)")
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(args.child)
        print(json.dumps(result))
        return result
    out = args.out or tempfile.mkdtemp(prefix="nestgraph-existing-")
    os.makedirs(out, exist_ok=True)
    return parent(out)


if __name__ == "__main__":
    # Imported by name, so the classes are existing_code:Policy (not __main__:Policy),
    # a path the fresh process can import.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import existing_code

    existing_code.main(sys.argv[1:])
