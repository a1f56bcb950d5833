"""NumPy scalars and small arrays as spec leaves (nestgraph._numpyleaves)."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from conftest import bundle_members, sealed, zip_members
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nestgraph as ng
from nestgraph._numpyleaves import MAX_INLINE_ELEMENTS, format_array, parse_array

tf1 = tf.compat.v1

_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip


class Holder:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _rebuild(value: Any) -> Any:
    """``value`` walked, written as YAML, read back and rebuilt."""
    spec = ng.Spec.from_yaml(ng.to_graph({"v": value}).to_yaml())
    with tf.Graph().as_default() as graph:
        return ng.from_graph(spec, graph)["v"]


def _same_bits(a: Any, b: Any) -> bool:
    """Same type, dtype, shape and bits, except that any NaN equals any NaN (no payloads)."""
    a, b = np.asarray(a), np.asarray(b)
    if (a.dtype, a.shape) != (b.dtype, b.shape):
        return False
    if a.dtype.kind == "c":
        return _same_bits(a.real, b.real) and _same_bits(a.imag, b.imag)
    if a.dtype.kind != "f":
        return a.tobytes() == b.tobytes()
    nan = np.isnan(a)
    return bool((nan == np.isnan(b)).all()) and a[~nan].tobytes() == b[~nan].tobytes()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_DTYPES).flatmap(lambda d: hnp.from_dtype(np.dtype(d))))
def test_scalars_come_back_as_the_same_type_and_bits(value: Any) -> None:
    value = np.asarray(value)[()]  # hypothesis gives NumPy scalars of the dtype
    back = _rebuild(value)
    assert type(back) is type(value)
    assert _same_bits(back, value), (value, back)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (np.float32(0.5), "numpy float32 0.5"),
        (np.float32(0.1), "numpy float32 0.1"),
        (np.float64(-0.0), "numpy float64 -0.0"),
        (np.float16(np.inf), "numpy float16 inf"),
        (np.float32(np.nan), "numpy float32 nan"),
        (np.int64(-(2**63)), f"numpy int64 {-(2**63)}"),
        (np.uint8(255), "numpy uint8 255"),
        (np.bool_(True), "numpy bool True"),
        (np.complex64(1 - 2j), "numpy complex64 (1-2j)"),
    ],
)
def test_scalars_are_readable(value: Any, text: str) -> None:
    assert ng.to_graph({"v": value}).to_dict()["root"]["dict"]["v"] == text
    back = _rebuild(value)
    assert type(back) is type(value) and _same_bits(back, value)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_DTYPES).flatmap(
        lambda d: hnp.arrays(
            np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
        )
    )
)
def test_small_arrays_come_back_exactly(array: np.ndarray) -> None:
    back = _rebuild(array)
    assert type(back) is np.ndarray
    assert _same_bits(back, array)


def test_array_is_written_inline_readably() -> None:
    array = np.array([[1.0, np.nan], [-np.inf, 0.25]], dtype=np.float32)
    text = ng.to_graph({"v": array}).to_dict()["root"]["dict"]["v"]
    assert text == "ndarray float32 [2, 2] [[1.0, nan], [-inf, 0.25]]"
    assert format_array(np.zeros((0, 3), np.int8)) == "int8 [0, 3] []"
    assert parse_array("int8 [0, 3] []").shape == (0, 3)
    assert format_array(np.zeros((2, 0, 4), np.int8)) == "int8 [2, 0, 4] [[], []]"
    assert parse_array("int8 [2, 0, 4] [[], []]").shape == (2, 0, 4)


def test_arrays_over_the_inline_limit_are_skipped_with_a_reason() -> None:
    at_limit = np.zeros(MAX_INLINE_ELEMENTS, np.float32)
    assert ng.to_graph(Holder(a=at_limit)).skipped == {}
    spec = ng.to_graph(Holder(replay=np.zeros((MAX_INLINE_ELEMENTS + 1, 1), np.float32)))
    assert spec.skipped == {
        "replay": f"numpy:ndarray float32 [{MAX_INLINE_ELEMENTS + 1}, 1] has "
        f"{MAX_INLINE_ELEMENTS + 1} elements, more than the {MAX_INLINE_ELEMENTS} "
        "written inline in a spec (a bundle stores it as a member of its own)"
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (np.array(["a", "b"]), "arrays of dtype <U1 are not recorded"),
        (np.array([object()]), "arrays of dtype object are not recorded"),
        (np.datetime64("2020-01-01"), "numpy:datetime64 scalars are not recorded"),
        (np.ma.masked_array([1, 2]), "numpy.ma:MaskedArray is a numpy object"),
    ],
)
def test_other_numpy_values_are_skipped_with_a_reason(value: Any, reason: str) -> None:
    spec = ng.to_graph(Holder(v=value))
    assert reason in spec.skipped["v"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("numpy float32", "a NumPy scalar is written 'numpy DTYPE VALUE'"),
        ("numpy float128 1.0", "dtype must be one of bool, complex128"),
        ("numpy int8 128", "'128' is not a int8 value"),
        ("numpy uint8 -1", "'-1' is not a uint8 value"),
        ("numpy bool true", "'true' is not a bool value"),
        ("numpy float32 1.0.0", r"'1\.0\.0' is not a float32 value"),
        ("numpy float16 65520", "'65520' is not a float16 value"),
        ("numpy float32 3.5e38", "'3.5e38' is not a float32 value"),
        ("numpy float64 1e400", "'1e400' is not a float64 value"),
        ("numpy complex64 (1+1e39j)", r"'\(1\+1e39j\)' is not a complex64 value"),
        ("ndarray float32 [2] [1.0]", r"values have shape \[1\], but the shape says \[2\]"),
        ("ndarray float32 [2, 2] [[1.0, 2.0], [3.0]]", "values are ragged"),
        ("ndarray int8 [1] [[1]", "values end too early: a .\\]. is missing"),
        ("ndarray int8 [1] [1]]", "unexpected text after the values"),
        ("ndarray int8 [1] [1 2]", "expected ',' or '\\]' in values, found '2'"),
        ("ndarray int8 [300] [0]", "more than 256 elements are not written inline"),
        ("ndarray int8 1 [1]", "an inline array is written 'ndarray DTYPE \\[SHAPE\\] VALUES'"),
        ("ndarray str [1] [a]", "dtype must be one of"),
    ],
)
def test_malformed_numpy_text_is_a_spec_error_with_path_and_line(text: str, message: str) -> None:
    with pytest.raises(ng.SpecError, match=rf"m\.yaml: v \(line 2\): {message}"):
        ng.Spec.from_yaml(f"nestgraph: 1\nroot: {{dict: {{v: '{text}'}}}}\n", source="m.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[], 0123456789.-+enaifTrueFals()j", max_size=40), st.sampled_from(_DTYPES))
def test_hostile_array_text_is_a_spec_error_or_an_exact_leaf(values: str, dtype: str) -> None:
    for text in (f"ndarray {dtype} [2] {values}", f"numpy {dtype} {values}"):
        try:
            spec = ng.Spec.from_dict({"nestgraph": 1, "root": text})
        except ng.SpecError:
            continue
        with tf.Graph().as_default() as graph:
            value = ng.from_graph(spec, graph)
        # Whatever was accepted rebuilds, and writes back to a spec that rebuilds the same.
        again = _rebuild(value)
        assert type(again) is type(value) and _same_bits(again, value)
        assert math.prod(np.shape(value)) <= MAX_INLINE_ELEMENTS


# --------------------------------------------------------------------------- arrays in bundles


class Agent:
    """A plain class holding a replay buffer far larger than a spec writes inline."""

    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 4], name="x")
        self.w = tf1.get_variable("w", [4, 2])
        self.out = tf.matmul(self.x, self.w)
        self.replay = np.arange(40_000, dtype=np.float32).reshape(10_000, 4)
        self.counts = np.arange(300, dtype=np.int64)


def _agent_bundle() -> tuple[Agent, bytes]:
    with tf.Graph().as_default():
        agent = Agent()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return agent, ng.dumps(agent, session)


def test_a_bare_spec_skips_a_large_array_and_a_bundle_stores_it_exactly() -> None:
    agent, blob = _agent_bundle()
    assert "replay" in ng.to_graph(agent).skipped  # no bundle: nothing to hold it
    members = dict(bundle_members(blob))
    assert sorted(n for n in members if n.startswith("arrays/")) == [
        "arrays/0.npy",
        "arrays/1.npy",
    ]
    spec = members["spec.yaml"].decode()
    assert "replay: array arrays/0.npy float32 [10000, 4]" in spec
    loaded, session = ng.loads(blob, generic=True)
    session.close()
    np.testing.assert_array_equal(loaded.replay, agent.replay)
    assert loaded.replay.dtype == np.float32 and loaded.counts.dtype == np.int64
    np.testing.assert_array_equal(loaded.counts, agent.counts)
    again = ng.Spec.from_yaml(spec)
    assert again.skipped == {}


def test_a_later_save_writes_the_arrays_as_they_are_then() -> None:
    with tf.Graph().as_default():
        agent = Agent()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            first = ng.dumps(agent, session)
            agent.replay[0, 0] = -1.0  # a replay buffer fills in place
            second = ng.dumps(agent, session)
    assert ng.loads(first, generic=True)[0].replay[0, 0] == 0.0
    assert ng.loads(second, generic=True)[0].replay[0, 0] == -1.0


def test_a_member_that_is_not_what_the_spec_says_is_a_bundle_error() -> None:
    _, blob = _agent_bundle()
    members = bundle_members(blob)
    wrong = io.BytesIO()
    np.save(wrong, np.zeros((3, 3), np.float64), allow_pickle=False)
    forged = sealed([(n, wrong.getvalue() if n == "arrays/0.npy" else d) for n, d in members])
    with pytest.raises(
        ng.BundleError,
        match=r"replay: .*arrays/0\.npy holds float64 \[3, 3\], the spec says float32 \[10000, 4\]",
    ):
        ng.loads(forged, generic=True)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    forged = sealed([(n, pickled.getvalue() if n == "arrays/1.npy" else d) for n, d in members])
    with pytest.raises(ng.BundleError, match=r"counts: .*holds Python objects"):
        ng.loads(forged, generic=True)
    damaged = [(n, d[:-1] + b"\x00" if n == "arrays/0.npy" else d) for n, d in members]
    with pytest.raises(ng.BundleError, match=r"checksum mismatch for member arrays/0\.npy"):
        ng.loads(zip_members(damaged), generic=True)
