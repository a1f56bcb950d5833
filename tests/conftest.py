"""Shared test set-up: one TensorFlow import per test process, quiet logs, legacy Keras."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

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
