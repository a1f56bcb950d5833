"""Checkpoint indexes read without TensorFlow (nestgraph.bundle._tensorbundle)."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import tensorflow as tf
from hypothesis import given, settings

from nestgraph.bundle._tensorbundle import (
    CheckpointIndex,
    _block,
    _Corrupt,
    _find,
    read_table,
    write_table,
)

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def tensorflow_index(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An index written by TensorFlow itself: one large block, a restart point every 16 keys."""
    directory = tmp_path_factory.mktemp("checkpoint")
    with tf.Graph().as_default():
        for i in range(300):
            tf1.get_variable(f"scope_{i % 7}/v{i}", [2], initializer=tf1.zeros_initializer())
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(session, str(directory / "model"))
    return (directory / "model.index").read_bytes()


def test_every_key_is_found_through_the_restart_points(tensorflow_index: bytes) -> None:
    everything = CheckpointIndex(tensorflow_index, "model.index").entries()
    assert len(everything) == 300
    fresh = CheckpointIndex(tensorflow_index, "model.index")
    for key, entry in everything.items():
        assert fresh.entries([key]) == {key: entry}
    assert fresh._blocks == {}  # no block was parsed whole
    for absent in ["scope_0/v", "scope_3/v3x", "zzz", "scope_9/v1", "a"]:
        assert fresh.entries([absent]) == {}


@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=40, unique=True),
    probe=st.binary(max_size=6),
)
def test_find_agrees_with_a_full_scan(keys: list[bytes], probe: bytes) -> None:
    entries = sorted((key, key[::-1]) for key in keys)
    table = write_table(entries)
    _, handles = read_table(table)
    block = _block(table, handles[0])
    for key, value in entries:
        assert _find(block, key) == value
    assert _find(block, probe) == dict(entries).get(probe)


def test_a_restart_point_inside_a_run_is_corrupt() -> None:
    block = write_table([(b"a", b"1"), (b"b", b"2")])
    _, handles = read_table(block)
    data = bytearray(_block(block, handles[0]))
    data[-8:-4] = (10_000).to_bytes(4, "little")  # the second restart point, far outside
    with pytest.raises(_Corrupt, match="outside its block"):
        _find(bytes(data), b"b")
