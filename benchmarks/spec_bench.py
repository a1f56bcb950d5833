"""How fast a nestgraph spec is written and read, next to TensorFlow's meta graph.

The model: ``--towers`` towers of ``--layers`` dense ReLU layers, ``--width``
wide (default 40 x 8 x 64), trained with Adam; every tower is a
``GraphConvertible`` holding a list of layer objects (``w``, ``b``, ``out``).
Two operations are timed side by side, each the median of ``--repeats`` runs
after a warm-up run:

(a) save the structure: ``ng.to_graph(model)`` + ``spec.to_yaml()``, against
    ``tf.compat.v1.train.export_meta_graph()`` of the same graph;
(b) load it: ``ng.Spec.from_yaml(text)`` + ``ng.from_graph(spec, graph)`` +
    reading every bound field of the rebuilt tree, against
    ``tf.compat.v1.train.import_meta_graph`` of the exported meta graph into a
    fresh graph.

Target: ours <= 0.25 x TensorFlow's for both. A missed target is followed by a
cProfile of our side (``--profile`` prints it always).

Run::

    python benchmarks/spec_bench.py            # the full model
    python benchmarks/spec_bench.py --quick    # a tiny model: a smoke test
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import yaml

import nestgraph as ng

tf1 = tf.compat.v1

TARGET_RATIO = 0.25


# --------------------------------------------------------------------------- the model


class Dense(ng.GraphConvertible):
    """``out = relu(inputs @ w + b)`` under the current variable scope."""

    def __init__(self, inputs: Any, width: int) -> None:
        self.w = tf1.get_variable("w", [width, width], initializer=tf1.glorot_uniform_initializer())
        self.b = tf1.get_variable("b", [width], initializer=tf1.zeros_initializer())
        self.out = tf.nn.relu(tf.matmul(inputs, self.w) + self.b)


class Tower(ng.GraphConvertible):
    """A stack of dense layers and its squared-error loss."""

    def __init__(self, inputs: Any, targets: Any, layers: int, width: int) -> None:
        self.layers: list[Dense] = []
        h = inputs
        for i in range(layers):
            with tf1.variable_scope(f"layer_{i}"):
                layer = Dense(h, width)
            self.layers.append(layer)
            h = layer.out
        self.out = h
        self.loss = tf.reduce_mean(tf.square(h - targets), name="loss")


class TowerModel(ng.GraphConvertible):
    """All towers on one input, their summed loss and the Adam step."""

    def __init__(self, towers: int, layers: int, width: int) -> None:
        self.x = tf1.placeholder(tf.float32, [None, width], name="x")
        self.y = tf1.placeholder(tf.float32, [None, width], name="y")
        self.towers: list[Tower] = []
        for t in range(towers):
            with tf1.variable_scope(f"tower_{t}"):
                self.towers.append(Tower(self.x, self.y, layers, width))
        self.loss = tf.add_n([tower.loss for tower in self.towers], name="loss")
        self.global_step = tf1.train.get_or_create_global_step()
        self.train_op = tf1.train.AdamOptimizer(1e-3).minimize(
            self.loss, global_step=self.global_step, name="train"
        )


def touch(model: TowerModel) -> int:
    """Read every bound field of a rebuilt model (as a user would); return how many."""
    seen = [model.x, model.y, model.loss, model.global_step, model.train_op]
    for tower in model.towers:
        seen.append(tower.out)
        seen.append(tower.loss)
        for layer in tower.layers:
            seen.append(layer.w)
            seen.append(layer.b)
            seen.append(layer.out)
    assert all(item is not None for item in seen)
    return len(seen)


# --------------------------------------------------------------------------- timing


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def profile(fn: Callable[[], Any], repeats: int, limit: int = 25) -> str:
    """cProfile of ``repeats`` calls of ``fn``: the top functions by internal time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


@dataclass
class Row:
    operation: str
    ours_ms: float
    tf_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.tf_ms

    @property
    def ok(self) -> bool:
        return self.ratio <= TARGET_RATIO


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| operation | ours ms | TF ms | ratio | target | result |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.operation} | {r.ours_ms:.2f} | {r.tf_ms:.2f} | {r.ratio:.3f} "
            f"| <= {TARGET_RATIO} | {'pass' if r.ok else 'FAIL'} |"
        )
    return "\n".join(lines)


def machine() -> str:
    from nestgraph import _yamlio  # which loader nestgraph actually uses

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    loader = getattr(_yamlio, "_Loader", None)
    return (
        f"machine: {usable} usable cores (nproc), {platform.machine()}, {platform.system()}; "
        f"python {platform.python_version()}; tensorflow {tf.__version__}; "
        f"PyYAML {yaml.__version__}, libyaml {'yes' if yaml.__with_libyaml__ else 'no'}, "
        f"nestgraph loader {getattr(loader, '__name__', '?')}"
    )


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few repeats")
    parser.add_argument("--towers", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per operation")
    parser.add_argument("--profile", action="store_true", help="always print our cProfile")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    towers = args.towers or (2 if args.quick else 40)
    layers = args.layers or (2 if args.quick else 8)
    width = args.width or (8 if args.quick else 64)
    repeats = args.repeats or (3 if args.quick else 7)

    graph = tf.Graph()
    with graph.as_default():
        started = time.perf_counter()
        model = TowerModel(towers, layers, width)
        build_s = time.perf_counter() - started
    ops = len(graph.get_operations())

    # (a) save the structure
    def ours_save() -> str:
        return ng.to_graph(model).to_yaml()

    def tf_save() -> Any:
        with graph.as_default():  # TensorFlow refuses to export while eager is on
            return tf1.train.export_meta_graph()

    text = ours_save()
    meta_graph = tf_save()
    spec = ng.Spec.from_yaml(text)
    bindings = len(spec.flatten())

    # (b) load it. Ours binds to a graph imported once from the same meta graph.
    loaded = tf.Graph()
    with loaded.as_default():
        tf1.train.import_meta_graph(meta_graph)

    def ours_load() -> int:
        rebuilt = ng.from_graph(ng.Spec.from_yaml(text), loaded)
        return touch(rebuilt)

    def tf_load() -> Any:
        with tf.Graph().as_default() as fresh:
            tf1.train.import_meta_graph(meta_graph)
        return fresh

    touched = ours_load()
    if touched != bindings:
        raise SystemExit(f"touched {touched} fields but the spec has {bindings} bindings")

    rows = [
        Row("(a) to_graph + to_yaml vs export_meta_graph", *_pair(ours_save, tf_save, repeats)),
        Row(
            "(b) from_yaml + from_graph + touch all vs import_meta_graph",
            *_pair(ours_load, tf_load, repeats),
        ),
    ]

    # Where our time goes, for the README and for anyone chasing a regression.
    parsed = ng.Spec.from_yaml(text)
    parts = {
        "to_graph": median_ms(lambda: ng.to_graph(model), repeats),
        "to_yaml": median_ms(spec.to_yaml, repeats),
        "from_yaml": median_ms(lambda: ng.Spec.from_yaml(text), repeats),
        "from_graph": median_ms(lambda: ng.from_graph(parsed, loaded), repeats),
        "from_graph + touch all": median_ms(lambda: touch(ng.from_graph(parsed, loaded)), repeats),
    }

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    print(f"# spec_bench: {towers} towers x {layers} layers x {width} wide, Adam\n")
    print(markdown_table(rows))
    print()
    print("| ours, by part | ms |")
    print("| --- | ---: |")
    for name, ms in parts.items():
        print(f"| {name} | {ms:.2f} |")
    print()
    print(
        f"bindings: {bindings}; graph ops: {ops}; spec YAML: {len(text)} bytes; "
        f"meta graph: {meta_graph.ByteSize()} bytes; model build: {build_s:.2f} s"
    )
    print(f"median of {repeats} runs after 1 warm-up run each")
    print(machine())
    print(f"command: {command}")

    missed = [r for r in rows if not r.ok]
    if args.profile or missed:
        for name, fn in (("(a) save", ours_save), ("(b) load", ours_load)):
            print(f"\n## cProfile of ours, {name}, {repeats} runs\n")
            print(profile(fn, repeats))
    return 1 if (args.check and missed) else 0


def _pair(ours: Callable[[], Any], theirs: Callable[[], Any], repeats: int) -> tuple[float, float]:
    return median_ms(ours, repeats), median_ms(theirs, repeats)


if __name__ == "__main__":
    sys.exit(main())
