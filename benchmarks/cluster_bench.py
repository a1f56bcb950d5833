"""Cluster benchmark: save and load through a loopback cluster, nestgraph vs plain TensorFlow.

    python benchmarks/cluster_bench.py [--vocab 200000] [--dim 64] [--partitions 4]
                                       [--repeats 5]

Two ps tasks and a worker run as ``tf.compat.v1.train.Server``s in child
processes (inside a private network namespace, ``unshare -rn``, where the
machine allows it); this process is the client. The model is
``tests/_cluster.py``'s: a partitioned embedding (``--vocab`` x ``--dim``
float32 in ``--partitions`` parts), a linear head and a train op, placed with
``replica_device_setter``. Each case runs ``--repeats`` times after a warm-up,
in the same process, and the medians are printed with their ratio:

- ``save``: ``ng.save`` (values fetched through the session, checkpoint written
  by the client) vs ``Saver(sharded=True).save`` (each ps task writes its shard;
  this works here only because every task shares this machine's disk) plus
  ``export_meta_graph``;
- ``load``: ``ng.load(path, device_fn=setter, target=worker)`` vs
  ``import_meta_graph(clear_devices=True)`` under the same device function plus
  ``Saver.restore`` in a session on the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _median_seconds(run: Any, repeats: int) -> float:
    run()  # warm-up: the first save adds the saver, the first session connects
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(args: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    import tensorflow as tf

    import nestgraph as ng
    from tests import _cluster

    tf1 = tf.compat.v1
    cluster = _cluster.cluster_dict(_cluster.free_ports(3), ps=2, workers=1)
    spec = tf.train.ClusterSpec(cluster)
    target = "grpc://" + cluster["worker"][0]
    config = tf1.ConfigProto(operation_timeout_in_ms=120_000)

    def setter() -> Any:
        return tf1.train.replica_device_setter(cluster=spec, worker_device="/job:worker/task:0")

    bundle = os.path.join(out_dir, "model.ng")
    plain = os.path.join(out_dir, "plain")
    os.makedirs(plain)
    with _cluster.servers(cluster, [("ps", 0), ("ps", 1), ("worker", 0)]):
        graph = tf.Graph()
        with graph.as_default(), tf1.device(setter()):
            model = _cluster.ClusterModel(args.partitions, args.vocab, args.dim)
            init = tf1.global_variables_initializer()
            saver = tf1.train.Saver(sharded=True)
        session = tf1.Session(target, graph=graph, config=config)
        session.run(init)

        def ng_save() -> None:
            ng.save(model, session, bundle)

        def tf_save() -> None:
            with graph.as_default():
                saver.save(session, os.path.join(plain, "model"), write_meta_graph=False)
                tf1.train.export_meta_graph(os.path.join(plain, "model.meta"), graph=graph)

        results = {"save": (_median_seconds(ng_save, args.repeats),)}
        results["save"] += (_median_seconds(tf_save, args.repeats),)
        session.close()

        def ng_load() -> None:
            _, loaded = ng.load(bundle, device_fn=setter(), target=target, config=config)
            loaded.close()

        def tf_load() -> None:
            fresh = tf.Graph()
            with fresh.as_default(), fresh.device(setter()):
                restorer = tf1.train.import_meta_graph(
                    os.path.join(plain, "model.meta"), clear_devices=True
                )
            with tf1.Session(target, graph=fresh, config=config) as loaded:
                restorer.restore(loaded, os.path.join(plain, "model"))

        results["load"] = (
            _median_seconds(ng_load, args.repeats),
            _median_seconds(tf_load, args.repeats),
        )
    return {
        "cases": {
            case: {"nestgraph_s": ours, "tensorflow_s": theirs, "ratio": ours / theirs}
            for case, (ours, theirs) in results.items()
        },
        "embedding_mb": args.vocab * args.dim * 4 / 1e6,
        "bundle_bytes": os.path.getsize(bundle),
        "namespace": bool(_cluster.namespace_prefix()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        with tempfile.TemporaryDirectory() as out_dir:
            print(json.dumps(measure(args, out_dir)), flush=True)
        return

    import subprocess

    from tests import _cluster

    argv = [*_cluster.namespace_prefix(), sys.executable, __file__, "--inside", *sys.argv[1:]]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=_cluster.child_env(), timeout=1800, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(lines[-1])
    print(
        f"partitioned embedding {args.vocab} x {args.dim} float32 "
        f"({result['embedding_mb']:.1f} MB, {args.partitions} parts on 2 ps tasks), "
        f"bundle {result['bundle_bytes'] / 1e6:.1f} MB, median of {args.repeats}, "
        f"network namespace: {'yes' if result['namespace'] else 'no (plain loopback)'}"
    )
    print("| case | nestgraph s | TensorFlow s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for case, row in result["cases"].items():
        print(
            f"| {case} | {row['nestgraph_s']:.3f} | {row['tensorflow_s']:.3f} "
            f"| {row['ratio']:.2f}x |"
        )


if __name__ == "__main__":
    main()
