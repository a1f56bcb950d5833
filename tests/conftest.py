"""Shared test set-up: one TensorFlow import per test process, quiet logs, legacy Keras."""

from __future__ import annotations

import os

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
