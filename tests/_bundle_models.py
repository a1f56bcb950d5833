"""Helpers shared by test_bundle.py and the fresh processes it starts.

Run as a script in a child process::

    python tests/_bundle_models.py continue BUNDLE START STEPS
        load BUNDLE, train STEPS more steps from step START, print JSON
    python tests/_bundle_models.py killed-save BUNDLE
        save a bundle, train a step, then die (SIGKILL) halfway through saving again

The child needs ``PYTHONPATH`` to hold the repository root (for ``nestgraph``
and ``benchmarks._models``, where the model classes live).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import numpy as np

ALLOW = ["benchmarks._models.*"]
SLOT = "tower_0/layer_0/w/Adam:0"


def train(session: Any, model: Any, start: int, steps: int) -> list[float]:
    """Run ``steps`` training steps on the deterministic batches ``start, start + 1, ...``."""
    from benchmarks._models import batch

    width = int(model.x.shape[1])
    losses = []
    for step in range(start, start + steps):
        x, y = batch(width, step)
        _, loss = session.run([model.train_op, model.loss], {model.x: x, model.y: y})
        losses.append(float(loss))
    return losses


def slot_value(session: Any) -> np.ndarray:
    """The value of one Adam slot variable (its graph name is a resource handle)."""
    (slot,) = [v for v in session.graph.get_collection("variables") if v.name == SLOT]
    value: np.ndarray = session.run(slot)
    return value


def to_hex(array: np.ndarray) -> str:
    """An exact, JSON-friendly form of an array's bytes."""
    return np.ascontiguousarray(array).tobytes().hex()


def _continue(bundle: str, start: int, steps: int) -> None:
    from benchmarks._models import single_thread_config
    from nestgraph.bundle import load

    model, session = load(bundle, allow=ALLOW, config=single_thread_config())
    report = {
        "class": type(model).__name__,
        "global_step": int(session.run(model.global_step)),
        "slot": to_hex(slot_value(session)),
        "losses": train(session, model, start, steps),
    }
    print(json.dumps(report))


def _killed_save(bundle: str) -> None:
    import tensorflow as tf

    from benchmarks._models import build_tower_model, single_thread_config
    from nestgraph.bundle import save

    with tf.Graph().as_default():
        model = build_tower_model(towers=3, layers=2, width=8)
        session = tf.compat.v1.Session(config=single_thread_config())
        session.run(tf.compat.v1.global_variables_initializer())
    save(model, session, bundle)
    train(session, model, 0, 1)

    from nestgraph.bundle import _zipstream

    written = []
    real_render = _zipstream.Layout.render

    def render_then_die(self: _zipstream.Layout, member: Any) -> bytes:
        written.append(member)
        if len(written) == 3:  # manifest and graph.pb are in the file, the spec is not
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_render(self, member)

    _zipstream.Layout.render = render_then_die  # type: ignore[method-assign]
    save(model, session, bundle)
    raise AssertionError("the process should have been killed")


if __name__ == "__main__":
    command, bundle_path, *rest = sys.argv[1:]
    if command == "continue":
        _continue(bundle_path, int(rest[0]), int(rest[1]))
    elif command == "killed-save":
        _killed_save(bundle_path)
    else:
        raise SystemExit(f"unknown command {command!r}")
