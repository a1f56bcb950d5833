"""Shared test set-up: one TensorFlow import per test process, quiet logs, legacy Keras."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from typing import Any

# Must be set before TensorFlow is imported anywhere in this process:
# tf.compat.v1.layers needs Keras 2 (the tf-keras package).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tensorflow as tf

tf1 = tf.compat.v1


@pytest.fixture
def graph():
    """A fresh graph, made the default for the duration of the test."""
    g = tf.Graph()
    with g.as_default():
        yield g


def run_python(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args`` in a fresh process; the one subprocess runner.

    The child gets this process's environment with TensorFlow's C++ log level at
    2, minus ``unset``, plus ``env``; its output is captured as text.
    """
    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for name in unset:
        child_env.pop(name, None)
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(name="run_python")
def run_python_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`run_python`, as a fixture."""
    return run_python


# --------------------------------------------------------------------------- zip helpers
# One set, for every test that takes a bundle apart or puts a hostile one together.

Members = list[tuple[str, bytes]]


def bundle_members(data: bytes) -> Members:
    """``(name, bytes)`` of every member of the zip ``data``, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def zip_members(members: Members, compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of ``members`` as they are (a manifest that no longer matches stays so)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def sealed(members: Members) -> bytes:
    """A zip of ``members`` whose manifest's sizes and checksums match them again."""
    manifest = json.loads(dict(members)["manifest.json"])
    manifest["parts"] = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for n, d in members
        if n != "manifest.json"
    }
    rest = [(n, d) for n, d in members if n != "manifest.json"]
    return zip_members([("manifest.json", json.dumps(manifest).encode()), *rest])


def edit_graph(data: bytes, edit: Callable[[Any], None]) -> bytes:
    """The bundle ``data`` with its MetaGraphDef changed by ``edit``, checksums valid."""
    from tensorflow.core.protobuf import meta_graph_pb2

    members = bundle_members(data)
    meta_graph = meta_graph_pb2.MetaGraphDef.FromString(dict(members)["graph.pb"])
    edit(meta_graph)
    graph_bytes = meta_graph.SerializeToString()
    return sealed([(n, graph_bytes if n == "graph.pb" else d) for n, d in members])
