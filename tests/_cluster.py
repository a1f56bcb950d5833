"""A loopback TensorFlow cluster for test_cluster.py and benchmarks/cluster_bench.py.

Real ``tf.compat.v1.train.Server``s (gRPC) run in child processes of a driver
process; the driver is the client. TensorFlow's servers listen on the wildcard
address, so the driver runs inside a private network namespace
(``unshare -rn``, holding only ``lo``) where the machine allows it, and on
plain loopback otherwise. Every wait is bounded and the servers die with the
driver (``PR_SET_PDEATHSIG``) as well as in its ``finally``.

Run as a driver::

    python -m tests._cluster SCENARIO OUT_DIR     # prints one JSON line

The scenarios (``train``, ``resume``) are the functions named ``scenario_*``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

import nestgraph as ng

PYTHON = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_START_S = 60.0  # a child imports TensorFlow first; two cores are shared
TIMEOUT_MS = 30_000  # every session's operation timeout
VOCAB, DIM = 40, 4


# --------------------------------------------------------------------------- processes


@functools.cache
def namespace_prefix() -> tuple[str, ...]:
    """The argv prefix that runs a command in a private network namespace, or () if refused."""
    probe = ("unshare", "-rn", "sh", "-c", "ip link set lo up")
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if done.returncode != 0:
        return ()
    return ("unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"')


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    return env


def run_driver(scenario: str, out_dir: str, *extra: str, timeout: float = 240.0) -> dict[str, Any]:
    """Run ``scenario`` in a driver process (in its own network namespace); its JSON result."""
    argv = [*namespace_prefix(), PYTHON, "-m", "tests._cluster", scenario, out_dir, *extra]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=child_env(), check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"driver {scenario} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on at the moment."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_dict(ports: Sequence[int], ps: int, workers: int) -> dict[str, list[str]]:
    hosts = [f"localhost:{port}" for port in ports]
    return {"ps": hosts[:ps], "worker": hosts[ps : ps + workers]}


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def servers(
    cluster: dict[str, list[str]], tasks: Sequence[tuple[str, int]]
) -> Iterator[dict[tuple[str, int], subprocess.Popen[str]]]:
    """Run the ``(job, task)`` servers of ``cluster`` in child processes until the block ends."""
    children: dict[tuple[str, int], subprocess.Popen[str]] = {}
    try:
        for job, task in tasks:
            children[job, task] = subprocess.Popen(
                [PYTHON, "-m", "tests._cluster", "serve", json.dumps(cluster), job, str(task)],
                stdout=subprocess.PIPE,
                text=True,
                env=child_env(),
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + SERVER_START_S
        for child in children.values():
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], deadline - time.monotonic())
            if not ready or child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"server {child.args[-2:]} did not start")
        yield children
    finally:
        for child in children.values():
            child.kill()
        for child in children.values():
            child.wait(timeout=30)


def serve(cluster_json: str, job: str, task: str) -> None:
    import tensorflow as tf

    server = tf.compat.v1.train.Server(
        tf.train.ClusterSpec(json.loads(cluster_json)), job_name=job, task_index=int(task)
    )
    print("ready", flush=True)
    server.join()


# --------------------------------------------------------------------------- the model


class Embedder(ng.GraphConvertible):
    """A partitioned embedding and its lookup: a sub-network of its own."""

    def __init__(self, ids: Any, partitions: int, vocab: int = VOCAB, dim: int = DIM) -> None:
        import tensorflow as tf

        tf1 = tf.compat.v1
        self.table = tf1.get_variable(
            "emb",
            [vocab, dim],
            initializer=tf1.random_normal_initializer(seed=1),
            partitioner=tf1.fixed_size_partitioner(partitions),
        )
        self.out = tf.nn.embedding_lookup(self.table, ids, name="lookup")


class ClusterModel(ng.GraphConvertible):
    """An embedding (``partitions`` parts), a linear head, a loss and a train op."""

    def __init__(self, partitions: int = 2, vocab: int = VOCAB, dim: int = DIM) -> None:
        import tensorflow as tf

        tf1 = tf.compat.v1
        self.ids = tf1.placeholder(tf.int32, [None], name="ids")
        self.labels = tf1.placeholder(tf.float32, [None], name="labels")
        self.embedder = Embedder(self.ids, partitions, vocab, dim)
        self.w = tf1.get_variable("w", [dim, 1], initializer=tf1.ones_initializer())
        self.out = tf.reshape(tf.matmul(self.embedder.out, self.w), [-1], name="out")
        self.loss = tf.reduce_mean(tf.square(self.out - self.labels), name="loss")
        self.step = tf1.train.get_or_create_global_step()
        self.train = tf1.train.GradientDescentOptimizer(0.05).minimize(
            self.loss, global_step=self.step, name="train"
        )


def batch(model: Any, index: int = 0) -> dict[Any, Any]:
    """A deterministic batch (``index`` 0 is the evaluation batch)."""
    rng = np.random.default_rng(index)
    ids = rng.integers(0, VOCAB, 16).astype(np.int32)
    return {model.ids: ids, model.labels: (ids % 3).astype(np.float32)}


def snapshot(session: Any, model: Any) -> dict[str, Any]:
    """What a test compares exactly: outputs and loss on batch 0, the full table, the step."""
    out, loss, parts, step = session.run(
        [model.out, model.loss, list(model.embedder.table), model.step], batch(model)
    )
    table = np.concatenate(parts, axis=0)  # fixed_size_partitioner splits axis 0
    return {"out": out.tolist(), "loss": float(loss), "table": table.tolist(), "step": int(step)}


def train(session: Any, model: Any, steps: int, start: int = 1) -> None:
    for index in range(start, start + steps):
        session.run(model.train, batch(model, index))


def config() -> Any:
    import tensorflow as tf

    return tf.compat.v1.ConfigProto(operation_timeout_in_ms=TIMEOUT_MS)


def devices_of(model: Any) -> list[str]:
    return [part.device for part in model.embedder.table] + [model.w.device, model.step.device]


# --------------------------------------------------------------------------- scenarios


def scenario_train(out_dir: str) -> dict[str, Any]:
    """2 ps tasks and a worker in other processes; this process is only the client.

    Trains, saves (``save``, ``dumps``, ``export``), loads back onto the same
    cluster from bytes (the restore must not need the client's ``ram://``),
    then kills a ps task and saves again (a ``BundleError``, no file).
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    cluster = cluster_dict(free_ports(3), ps=2, workers=1)
    result: dict[str, Any] = {}
    with servers(cluster, [("ps", 0), ("ps", 1), ("worker", 0)]) as children:
        target = "grpc://" + cluster["worker"][0]
        spec = tf.train.ClusterSpec(cluster)
        graph = tf.Graph()
        with graph.as_default():
            setter = tf1.train.replica_device_setter(
                cluster=spec, worker_device="/job:worker/task:0"
            )
            with tf1.device(setter):
                model = ClusterModel(partitions=2)
            init = tf1.global_variables_initializer()
        with tf1.Session(target, graph=graph, config=config()) as session:
            session.run(init)
            train(session, model, steps=3)
            result["saved"] = snapshot(session, model)
            result["saved_devices"] = devices_of(model)
            ng.save(model, session, os.path.join(out_dir, "model.ng"))
            blob = ng.dumps(model, session)
            with open(os.path.join(out_dir, "dumped.ng"), "wb") as f:
                f.write(blob)
            ng.export(model, session, os.path.join(out_dir, "embedder.ng"), subtree="embedder")

        # The default keeps the saved devices, which this cluster has.
        again, session = ng.loads(blob, target=target, config=config())
        with session:
            result["reloaded"] = snapshot(session, again)
            result["reloaded_devices"] = devices_of(again)
            train(session, again, steps=1, start=4)
            result["reloaded_trained_step"] = int(session.run(again.step))

        result["dead_ps_save"] = _save_with_dead_ps(model, graph, target, out_dir, children)
    return result


def _save_with_dead_ps(
    model: Any, graph: Any, target: str, out_dir: str, children: dict[Any, Any]
) -> dict[str, Any]:
    """Save with ps task 1 gone: the error raised, and whether a file appeared."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    path = os.path.join(out_dir, "broken.ng")
    short = tf1.ConfigProto(operation_timeout_in_ms=5000)
    with tf1.Session(target, graph=graph, config=short) as session:
        session.run(tf1.global_variables_initializer())
        children["ps", 1].kill()
        children["ps", 1].wait(timeout=30)
        started = time.monotonic()
        try:
            ng.save(model, session, path)
            error = None
        except ng.NestgraphError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # reported to the test, which fails on it
            error = f"raw {type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
    return {
        "error": error,
        "exists": os.path.exists(path),
        "files": sorted(os.listdir(out_dir)),
        "seconds": seconds,
    }


def scenario_resume(out_dir: str) -> dict[str, Any]:
    """Resume ``model.ng`` (saved on 2 ps tasks) on 3 ps tasks, all in this process.

    Loads with ``device_fn=replica_device_setter(...)`` and ``target``, trains
    3 more steps, and saves from this cluster (ps tasks in the same process);
    then loads only the ``embedder`` sub-network onto it the same way, and the
    whole model again with the values sent in chunks of about one variable.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    cluster = cluster_dict(free_ports(4), ps=3, workers=1)
    spec = tf.train.ClusterSpec(cluster)
    hosted = [
        tf1.train.Server(spec, job_name=job, task_index=task)
        for job, task in [("ps", 0), ("ps", 1), ("ps", 2), ("worker", 0)]
    ]
    setter = tf1.train.replica_device_setter(cluster=spec, worker_device="/job:worker/task:0")
    model, session = ng.load(
        os.path.join(out_dir, "model.ng"),
        device_fn=setter,
        target=hosted[-1].target,
        config=config(),
    )
    with session:
        result = {"devices": devices_of(model), "before": snapshot(session, model)}
        train(session, model, steps=3, start=4)
        result["after"] = snapshot(session, model)
        ng.save(model, session, os.path.join(out_dir, "resumed.ng"))
    # A fresh setter: one keeps its round-robin position from load to load.
    setter = tf1.train.replica_device_setter(cluster=spec, worker_device="/job:worker/task:0")
    embedder, session = ng.load(
        os.path.join(out_dir, "model.ng"),
        subtree="embedder",
        device_fn=setter,
        target=hosted[-1].target,
        config=config(),
    )
    with session:
        result["subtree_devices"] = [part.device for part in embedder.table]
        parts = session.run(list(embedder.table))
        result["subtree_table"] = np.concatenate(parts, axis=0).tolist()

    # Values fed to the cluster a chunk (here: about one variable) at a time.
    from nestgraph.bundle import _remote

    _remote.CHUNK_BYTES = 200
    reads = []
    read_on_client = _remote._read_on_client

    def counted(outputs: Any, prefix: str) -> Any:
        reads.append(len(outputs))
        return read_on_client(outputs, prefix)

    _remote._read_on_client = counted
    setter = tf1.train.replica_device_setter(cluster=spec, worker_device="/job:worker/task:0")
    model, session = ng.load(
        os.path.join(out_dir, "model.ng"), device_fn=setter, target=hosted[-1].target
    )
    with session:
        result["chunked"] = snapshot(session, model)
    result["chunk_sizes"] = reads
    return result


SCENARIOS: dict[str, Callable[[str], dict[str, Any]]] = {
    "train": scenario_train,
    "resume": scenario_resume,
}


def main(argv: Sequence[str]) -> None:
    if argv[0] == "serve":
        serve(*argv[1:])
        return
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    result = SCENARIOS[argv[0]](*argv[1:])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    # Import this file under its real name, so the model classes are tests._cluster:...
    from tests._cluster import main as _main

    _main(sys.argv[1:])
