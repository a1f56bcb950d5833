"""Bundle benchmark: nestgraph's save and load paths against plain TensorFlow.

    python benchmarks/load_bench.py [--towers 10,40,160] [--layers 8] [--width 64]
                                    [--repeats 3] [--cases all]

For each model size (every ``--towers`` x ``--width`` pair, ``--layers`` deep;
``benchmarks/_models.py``: towers of dense layers trained with Adam) the model
is written once as a bundle and once as a plain TensorFlow checkpoint with its
meta graph; then each case runs ``--repeats`` times, each in a fresh process,
and the median time and peak memory are reported. Timing starts after the
imports (and, where the case needs the model in memory, after it is built).
Memory is the peak resident set size during the timed part above the size
just before it (``VmHWM`` reset through ``/proc/self/clear_refs``). Before
each run the parent calls ``os.sync()``, so no run pays for the writeback of
the one before it (``Saver.save`` returns with its files in the page cache;
``ng.save`` fsyncs its bundle before it returns, and pays for that itself).

Cases, each against its TensorFlow counterpart:

- ``save``: ``ng.save`` vs ``Saver(sharded=True).save`` (which also exports the meta graph);
- ``durable``: the same, with TensorFlow's files fsynced as ``ng.save`` fsyncs its bundle;
- ``load``: ``ng.load`` vs ``import_meta_graph`` + ``Saver.restore``;
- ``subtree``: ``ng.load(subtree="towers.7")`` vs the practical limit, importing a
  meta graph already pruned to that tower and restoring its variables with
  ``Saver(var_list)`` from the plain checkpoint;
- ``memory``: ``ng.dumps`` + ``ng.loads`` vs ``Saver.save`` to ``ram://`` and reading
  the files back, then writing them to ``ram://`` again, import and restore.
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
CASES = {
    "save": ("ng_save", "plain_save", "<= 1.2x"),
    "durable": ("ng_save", "plain_save_synced", "(same durability)"),
    "load": ("ng_load", "plain_load", "<= 1.2x"),
    "subtree": ("ng_subtree", "plain_subtree", "<= 1.5x"),
    "memory": ("ng_memory", "plain_memory", "<= 1.2x"),
}
TITLES = {
    "save": "`ng.save` vs `Saver.save`",
    "durable": "`ng.save` vs `Saver.save` + fsync of its files",
    "load": "`ng.load` vs `import_meta_graph` + `restore`",
    "subtree": '`ng.load(subtree="{subtree}")` vs pruned import + `Saver(var_list)`',
    "memory": "`dumps` + `loads` vs `ram://` save, read back, write, restore",
}


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


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current resident size
    except OSError:  # pragma: no cover - not Linux
        pass


def _fsync_all(directory: Path) -> None:
    """What ``ng.save`` does before it returns: every file, then the directory, on disk."""
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain_memory(session: Any) -> None:
    import tensorflow as tf

    tf1 = tf.compat.v1
    directory = f"ram://bench-{uuid.uuid4().hex}/"
    tf.io.gfile.makedirs(directory)
    with session.graph.as_default():
        tf1.train.Saver(sharded=True).save(session, directory + "model")
    files = {}
    for name in tf.io.gfile.listdir(directory):
        with tf.io.gfile.GFile(directory + name, "rb") as f:
            files[name] = f.read()
    tf.io.gfile.rmtree(directory)
    again = f"ram://bench-{uuid.uuid4().hex}/"
    tf.io.gfile.makedirs(again)
    for name, data in files.items():
        with tf.io.gfile.GFile(again + name, "wb") as f:
            f.write(data)
    del files
    graph = tf.Graph()
    with graph.as_default():
        saver = tf1.train.import_meta_graph(again + "model.meta")
        restored = tf1.Session(graph=graph)
        saver.restore(restored, again + "model")
    tf.io.gfile.rmtree(again)


def _child(case: str, workdir: Path, size: dict[str, int]) -> dict[str, float]:
    """Run one case in this (fresh) process; return its seconds and peak memory."""
    import tensorflow as tf

    import benchmarks._models  # noqa: F401 - imported before timing, as the model's code
    from nestgraph.bundle import dumps, load, loads, save

    tf1 = tf.compat.v1
    bundle = str(workdir / "model.ng")
    plain = str(workdir / "plain" / "model")
    if case in ("plain_memory", "ng_memory", "plain_save", "plain_save_synced", "ng_save"):
        model, session = _build(size)
    tower = _subtree(size)
    scope = f"tower_{tower.split('.')[1]}/"

    _reset_peak()
    before_kb = _memory_kb("VmRSS")
    start = time.perf_counter()
    if case == "plain_save":
        with session.graph.as_default():
            tf1.train.Saver(sharded=True).save(session, str(workdir / "out" / "model"))
    elif case == "plain_save_synced":
        with session.graph.as_default():
            tf1.train.Saver(sharded=True).save(session, str(workdir / "out" / "model"))
        _fsync_all(workdir / "out")
    elif case == "ng_save":
        save(model, session, workdir / "out.ng")
    elif case == "plain_load":
        graph = tf.Graph()
        with graph.as_default():
            saver = tf1.train.import_meta_graph(plain + ".meta")
            session = tf1.Session(graph=graph)
            saver.restore(session, plain)
    elif case == "ng_load":
        _, session = load(bundle, allow=ALLOW)
    elif case == "plain_subtree":
        graph = tf.Graph()
        with graph.as_default():
            tf1.train.import_meta_graph(str(workdir / "plain" / "tower.meta"))
            variables = [v for v in tf1.global_variables() if v.op.name.startswith(scope)]
            session = tf1.Session(graph=graph)
            tf1.train.Saver(var_list=variables).restore(session, plain)
    elif case == "ng_subtree":
        _, session = load(bundle, subtree=tower, allow=ALLOW)
    elif case == "plain_memory":
        _plain_memory(session)
    elif case == "ng_memory":
        loads(dumps(model, session), allow=ALLOW)
    else:
        raise SystemExit(f"unknown case {case!r}")
    seconds = time.perf_counter() - start
    peak_mb = max(0, _memory_kb("VmHWM") - before_kb) / 1024
    return {"seconds": seconds, "peak_mb": peak_mb}


# --------------------------------------------------------------------------- parent


def _prepare(workdir: Path, size: dict[str, int]) -> dict[str, Any]:
    import tensorflow as tf

    from nestgraph.bundle import _metagraph, save

    tf1 = tf.compat.v1
    # Two copies of the same model, so neither file holds the other's save ops.
    _, plain_session = _build(size)
    (workdir / "plain").mkdir()
    (workdir / "out").mkdir()
    with plain_session.graph.as_default():
        saver = tf1.train.Saver(sharded=True)
        saver.save(plain_session, str(workdir / "plain" / "model"))
        meta_graph = tf1.train.export_meta_graph(graph=plain_session.graph)
    model, session = _build(size)
    index = int(_subtree(size).split(".")[1])
    tower = model.towers[index]
    seeds = [tower.out.name, tower.loss.name]
    seeds += [t for layer in tower.layers for t in (layer.w.name, layer.b.name)]
    pruned = _metagraph.prune_meta_graph(meta_graph, seeds)
    (workdir / "plain" / "tower.meta").write_bytes(pruned.SerializeToString())
    graph = session.graph
    save(model, session, workdir / "model.ng")
    variables = graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    weights = sum(v.shape.num_elements() * v.dtype.size for v in variables)
    # The sub-network's own weights: what the spec binds, not the optimizer's slots.
    tower_weights = sum(
        v.shape.num_elements() * v.dtype.size for layer in tower.layers for v in (layer.w, layer.b)
    )
    plain_session.close()
    session.close()
    return {
        "ops": len(graph.get_operations()),
        "variables": len(variables),
        "weights_mb": weights / 1e6,
        "tower_mb": tower_weights / 1e6,
        "bundle_mb": (workdir / "model.ng").stat().st_size / 1e6,
    }


def _median(case: str, workdir: Path, size: dict[str, int], repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        # Each run starts with nothing left to write back: a plain save returns with its
        # files still in the page cache, and their writeback would slow whatever runs next.
        os.sync()
        command = [sys.executable, __file__, "--child", case, "--workdir", str(workdir)]
        command += [f"--{k}={v}" for k, v in size.items()]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.splitlines()[-1]))
        for leftover in (workdir / "out").iterdir():
            leftover.unlink()
        (workdir / "out.ng").unlink(missing_ok=True)
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": statistics.median(r["peak_mb"] for r in runs),
    }


def _rows(
    results: dict[str, dict[str, float]], facts: dict[str, Any], size: dict[str, int]
) -> list[str]:
    model = f"{size['towers']}x{size['layers']}x{size['width']} ({facts['weights_mb']:.0f} MB)"
    rows = []
    for name, (ours, theirs, target) in CASES.items():
        if ours not in results:
            continue
        a, b = results[ours], results[theirs]
        title = TITLES[name].format(subtree=_subtree(size))
        rows.append(
            f"| {model} | {title} | {a['seconds']:.3f} s, +{a['peak_mb']:.0f} MB "
            f"| {b['seconds']:.3f} s, +{b['peak_mb']:.0f} MB "
            f"| {a['seconds'] / b['seconds']:.2f}x | {target} |"
        )
    return rows


def _machine(repeats: int) -> str:
    import tensorflow as tf

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, {platform.system()}; "
        f"load average at the end {load[0]:.2f}. Each figure is the median of {repeats} "
        "fresh processes, timed after imports; memory is the peak resident size above "
        "the size before the call."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towers", default="40", help="comma-separated tower counts")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", default="64", help="comma-separated layer widths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="all", help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        size = {"towers": int(args.towers), "layers": args.layers, "width": int(args.width)}
        print(json.dumps(_child(args.child, args.workdir, size)))
        return
    cases = list(CASES) if args.cases == "all" else args.cases.split(",")
    rows = [
        "| model (weights) | case | nestgraph | TensorFlow | time ratio | target |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    notes = []
    for towers in (int(t) for t in args.towers.split(",")):
        for width in (int(w) for w in args.width.split(",")):
            size = {"towers": towers, "layers": args.layers, "width": width}
            with tempfile.TemporaryDirectory(prefix="nestgraph-bench-") as tmp:
                workdir = Path(tmp)
                facts = _prepare(workdir, size)
                results = {}
                for case in cases:
                    for child in CASES[case][:2]:
                        if child not in results:
                            results[child] = _median(child, workdir, size, args.repeats)
                        print(f"{size} {child}: {results[child]}", file=sys.stderr)
            rows.extend(_rows(results, facts, size))
            notes.append(
                f"{towers}x{args.layers}x{width}: {facts['ops']} ops, {facts['variables']} "
                f"variables, bundle {facts['bundle_mb']:.1f} MB, one tower's weights "
                f"{facts['tower_mb']:.1f} MB."
            )
    print("\n".join([*rows, "", *notes, "", _machine(args.repeats)]))


if __name__ == "__main__":
    main()
