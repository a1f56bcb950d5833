"""Load-time benchmark: nestgraph bundles against plain TensorFlow.

    python benchmarks/load_bench.py [--towers 40 --layers 8 --width 64 --repeats 3]

Builds the benchmark model (``benchmarks/_models.py``: towers of dense layers
trained with Adam), writes it once as a bundle and once as a plain TensorFlow
checkpoint with its meta graph, then times each case in ``--repeats`` fresh
processes and reports the median. Timing starts after the imports (and, for the
in-memory round trip, after the model is built), so it measures the work, not
Python start-up. Prints a markdown table with the ratios and the machine.

Cases:

- full load: ``ng.load(path)`` against ``import_meta_graph`` + ``Saver.restore``;
- sub-network load: ``ng.load(path, subtree="towers.7")`` against the full ``ng.load``;
- in memory: ``ng.dumps`` + ``ng.loads`` against ``Saver.save`` (with its meta graph)
  to ``ram://``, ``import_meta_graph`` into a new graph and ``restore`` from ``ram://``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ALLOW = ["benchmarks._models.*"]
CASES = ("plain_load", "ng_load", "ng_load_subtree", "plain_memory", "ng_memory")


# --------------------------------------------------------------------------- child processes


def _subtree(size: dict[str, int]) -> str:
    """One tower: the eighth, or the last of a smaller model."""
    return f"towers.{min(7, size['towers'] - 1)}"


def _build(size: dict[str, int]) -> tuple[Any, Any]:
    import tensorflow as tf

    from benchmarks._models import batch, build_tower_model

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        model = build_tower_model(size["towers"], size["layers"], size["width"])
        session = tf1.Session()
        session.run(tf1.global_variables_initializer())
        x, y = batch(size["width"], 0)
        session.run(model.train_op, {model.x: x, model.y: y})  # non-zero slots
    return model, session


def _child(case: str, workdir: Path, size: dict[str, int]) -> float:
    """Run one case in this (fresh) process; return the seconds it took."""
    import tensorflow as tf

    import benchmarks._models  # noqa: F401 - imported before timing, as the model's code
    from nestgraph.bundle import dumps, load, loads

    tf1 = tf.compat.v1
    bundle = str(workdir / "model.ng")
    plain = str(workdir / "plain" / "model")
    if case in ("plain_memory", "ng_memory"):
        model, session = _build(size)

    start = time.perf_counter()
    if case == "plain_load":
        graph = tf.Graph()
        with graph.as_default():
            saver = tf1.train.import_meta_graph(plain + ".meta")
            session = tf1.Session(graph=graph)
            saver.restore(session, plain)
    elif case == "ng_load":
        _, session = load(bundle, allow=ALLOW)
    elif case == "ng_load_subtree":
        _, session = load(bundle, subtree=_subtree(size), allow=ALLOW)
    elif case == "plain_memory":
        directory = f"ram://bench-{uuid.uuid4().hex}/"
        tf.io.gfile.makedirs(directory)
        with session.graph.as_default():
            tf1.train.Saver(sharded=True).save(session, directory + "model")
        graph = tf.Graph()
        with graph.as_default():
            saver = tf1.train.import_meta_graph(directory + "model.meta")
            restored = tf1.Session(graph=graph)
            saver.restore(restored, directory + "model")
        tf.io.gfile.rmtree(directory)
    elif case == "ng_memory":
        loads(dumps(model, session), allow=ALLOW)
    else:
        raise SystemExit(f"unknown case {case!r}")
    return time.perf_counter() - start


# --------------------------------------------------------------------------- parent


def _prepare(workdir: Path, size: dict[str, int]) -> dict[str, Any]:
    import tensorflow as tf

    from nestgraph.bundle import save

    # Two copies of the same model, so neither file holds the other's save ops.
    _, plain_session = _build(size)
    (workdir / "plain").mkdir()
    with plain_session.graph.as_default():
        saver = tf.compat.v1.train.Saver(sharded=True)
        saver.save(plain_session, str(workdir / "plain" / "model"))
    model, session = _build(size)
    graph = session.graph
    save(model, session, workdir / "model.ng")
    return {
        "ops": len(graph.get_operations()),
        "variables": len(graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)),
        "bundle_mb": (workdir / "model.ng").stat().st_size / 1e6,
    }


def _median_seconds(case: str, workdir: Path, size: dict[str, int], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        command = [sys.executable, __file__, "--child", case, "--workdir", str(workdir)]
        command += [f"--{k}={v}" for k, v in size.items()]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
        times.append(json.loads(done.stdout.splitlines()[-1])["seconds"])
    return statistics.median(times)


def _table(seconds: dict[str, float], facts: dict[str, Any], size: dict[str, int]) -> str:
    import tensorflow as tf

    full, plain = seconds["ng_load"], seconds["plain_load"]
    sub = seconds["ng_load_subtree"]
    memory, plain_memory = seconds["ng_memory"], seconds["plain_memory"]
    rows = [
        "| case | nestgraph | baseline | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| full load: `ng.load` vs `import_meta_graph` + `Saver.restore` "
        f"| {full:.3f} s | {plain:.3f} s | {full / plain:.2f}x | <= 1.25x |",
        f'| sub-network: `ng.load(subtree="{_subtree(size)}")` vs full `ng.load` '
        f"| {sub:.3f} s | {full:.3f} s | {full / sub:.1f}x faster | >= 8x faster |",
        f"| in memory: `dumps` + `loads` vs `Saver.save` to `ram://` + import + restore "
        f"| {memory:.3f} s | {plain_memory:.3f} s | {memory / plain_memory:.2f}x | <= 1.5x |",
    ]
    model = (
        f"Model: {size['towers']} towers x {size['layers']} dense layers x {size['width']} "
        f"wide, Adam; {facts['ops']} ops, {facts['variables']} variables, "
        f"bundle {facts['bundle_mb']:.1f} MB."
    )
    machine = (
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, {platform.system()}. "
        f"Each figure is the median of {facts['repeats']} fresh processes, timed after imports."
    )
    return "\n".join([*rows, "", model, machine])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towers", type=int, default=40)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = {"towers": args.towers, "layers": args.layers, "width": args.width}

    if args.child:
        print(json.dumps({"seconds": _child(args.child, args.workdir, size)}))
        return
    with tempfile.TemporaryDirectory(prefix="nestgraph-bench-") as tmp:
        workdir = Path(tmp)
        facts = _prepare(workdir, size)
        facts["repeats"] = args.repeats
        seconds = {}
        for case in CASES:
            seconds[case] = _median_seconds(case, workdir, size, args.repeats)
            print(f"{case}: {seconds[case]:.3f} s", file=sys.stderr)
    print(_table(seconds, facts, size))


if __name__ == "__main__":
    main()
