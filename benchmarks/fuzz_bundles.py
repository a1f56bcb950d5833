"""Fuzz bundle reading: hostile bytes may only raise NestgraphError subclasses.

    python benchmarks/fuzz_bundles.py --minutes 10 [--seed 1] [--out fuzz-failures/]

Mutates an honest bundle (overwrite, insert or delete a few bytes) in five
ways: the raw bundle bytes; graph.pb, spec.yaml and a checkpoint file with
the checksums made right again (so the damage reaches the graph, spec and
checkpoint readers); and random
graphs of listed, unknown and plain ops wired with cycles. Each case is
scanned, loaded and loaded with ``trusted=True``. An exception that is not a
``NestgraphError`` is a failure: the input is written to ``--out`` and the run
ends with status 1. The suite runs the same checks for a few seconds
(``tests/test_bundle_fuzz.py``); this is the long run.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import random
import sys
import time
import traceback
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

import nestgraph as ng
from nestgraph.bundle._container import BundleContents, pack, unpack

tf1 = tf.compat.v1

Edit = tuple[str, int, bytes]
EDIT_KINDS = ("overwrite", "insert", "delete")
HOSTILE_OPS = ("WriteFile", "PyFunc", "Fill", "While", "NoSuchOp", "NoOp", "Const")


class FuzzNet(ng.GraphConvertible):
    """The fuzzed bundle's model: three bound fields and a variable."""


@functools.lru_cache(maxsize=1)
def honest_bundle() -> bytes:
    """A small honest bundle (one dense layer), built once per process."""
    with tf.Graph().as_default():
        net = FuzzNet()
        net.x = tf1.placeholder(tf.float32, [None, 3], name="x")
        net.w = tf1.get_variable("w", [3, 2])
        net.out = tf.nn.relu(tf.matmul(net.x, net.w), name="out")
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return ng.dumps(net, session)


def members() -> BundleContents:
    return unpack(io.BytesIO(honest_bundle()), "fuzz")


def repack(
    graph: bytes | None = None,
    spec: bytes | None = None,
    checkpoint: dict[str, bytes] | None = None,
) -> bytes:
    """The honest bundle with graph.pb, spec.yaml or checkpoint files replaced,
    checksums right again."""
    contents = members()
    out = io.BytesIO()
    pack(
        BundleContents(
            graph=contents.graph if graph is None else graph,
            spec=contents.spec if spec is None else spec,
            checkpoint={**contents.checkpoint, **(checkpoint or {})},
            checkpoint_prefix=contents.checkpoint_prefix,
        ),
        out,
        {"nestgraph": "fuzz", "tensorflow": tf.__version__},
    )
    return out.getvalue()


def mutate(data: bytes, edits: Sequence[Edit]) -> bytes:
    """``data`` with each ``(kind, offset, chunk)`` edit applied in turn."""
    buffer = bytearray(data)
    for kind, at, chunk in edits:
        at = min(at, len(buffer))
        if kind == "overwrite":
            buffer[at : at + len(chunk)] = chunk
        elif kind == "insert":
            buffer[at:at] = chunk
        else:
            del buffer[at : at + len(chunk)]
    return bytes(buffer)


def hostile_graph(ops: Sequence[tuple[str, Sequence[int]]]) -> bytes:
    """The honest bundle with ``ops`` added, wired by control inputs, the first bound."""
    meta_graph = meta_graph_pb2.MetaGraphDef.FromString(members().graph)
    names = [f"fuzz_{i}" for i in range(len(ops))]
    for name, (op, inputs) in zip(names, ops, strict=True):
        node = meta_graph.graph_def.node.add()
        node.name, node.op = name, op
        node.input.extend(f"^{names[i % len(names)]}" for i in inputs)
    out = next(n for n in meta_graph.graph_def.node if n.name == "out")
    out.input.append(f"^{names[0]}")
    return repack(graph=meta_graph.SerializeToString())


def only_nestgraph_errors(blob: bytes) -> None:
    """Scan and load ``blob`` (trusted and not); any exception but NestgraphError escapes."""
    for attempt in (
        lambda: ng.scan(blob),
        lambda: ng.loads(blob),
        lambda: ng.loads(blob, trusted=True),
    ):
        try:
            result = attempt()
        except ng.NestgraphError:
            continue
        if isinstance(result, tuple):
            result[1].close()


def _random_edits(rng: random.Random, size: int) -> list[Edit]:
    return [
        (
            rng.choice(EDIT_KINDS),
            rng.randrange(max(size, 1)),
            rng.randbytes(rng.randint(1, 8)),
        )
        for _ in range(rng.randint(1, 4))
    ]


def mutated_checkpoint(name: str, edits: Sequence[Edit]) -> bytes:
    """The honest bundle with checkpoint file ``name`` (``index`` or ``data``) mutated."""
    (file,) = [f for f in members().checkpoint if name in f]
    return repack(checkpoint={file: mutate(members().checkpoint[file], edits)})


def _random_case(rng: random.Random) -> bytes:
    which = rng.randrange(5)
    if which == 4:
        name = rng.choice(["index", "data"])
        (file,) = [f for f in members().checkpoint if name in f]
        return mutated_checkpoint(name, _random_edits(rng, len(members().checkpoint[file])))
    if which == 0:
        blob = honest_bundle()
        return mutate(blob, _random_edits(rng, len(blob)))
    if which == 1:
        graph = members().graph
        return repack(graph=mutate(graph, _random_edits(rng, len(graph))))
    if which == 2:
        spec = members().spec
        return repack(spec=mutate(spec, _random_edits(rng, len(spec))))
    ops = [
        (rng.choice(HOSTILE_OPS), [rng.randrange(8) for _ in range(rng.randrange(4))])
        for _ in range(rng.randint(1, 8))
    ]
    return hostile_graph(ops)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default="fuzz-failures")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    deadline = time.monotonic() + args.minutes * 60
    cases = 0
    while time.monotonic() < deadline:
        blob = _random_case(rng)
        cases += 1
        try:
            only_nestgraph_errors(blob)
        except Exception:
            os.makedirs(args.out, exist_ok=True)
            path = os.path.join(args.out, f"case-{seed}-{cases}.ng")
            with open(path, "wb") as out:
                out.write(blob)
            traceback.print_exc()
            print(f"FAIL after {cases} cases (seed {seed}); input saved to {path}")
            return 1
    print(f"ok: {cases} cases in {args.minutes:g} min, only NestgraphError (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
