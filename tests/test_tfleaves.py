"""Sessions, Savers, dtypes and shapes as spec leaves (nestgraph._tfleaves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import nestgraph as ng
from nestgraph._tfleaves import format_shape, parse_shape

tf1 = tf.compat.v1


class Holder:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _yaml_round_trip(spec: ng.Spec) -> ng.Spec:
    return ng.Spec.from_yaml(spec.to_yaml())


def _fields(spec: ng.Spec) -> dict[str, Any]:
    return spec.to_dict()["fields"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- sessions


def test_session_field_is_the_session_given_to_from_graph(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [], name="x")
    with tf1.Session(graph=graph) as first:
        spec = ng.to_graph(Holder(x=x, sess=first))
    assert _fields(spec)["sess"] == "session Session"
    with tf1.Session(graph=graph) as second:
        model = ng.from_graph(
            _yaml_round_trip(spec), graph, allow=["test_tfleaves.*"], session=second
        )
        assert model.sess is second
        assert model.sess.run(model.x, {model.x: 2.0}) == 2.0


def test_session_field_without_a_session_is_a_placeholder_that_walks_back(
    graph: tf.Graph,
) -> None:
    x = tf1.placeholder(tf.float32, [], name="x")
    sess = tf1.InteractiveSession(graph=graph)
    try:
        spec = ng.to_graph(Holder(x=x, sess=sess))
    finally:
        sess.close()
    assert _fields(spec)["sess"] == "session InteractiveSession"
    model = ng.from_graph(spec, graph, generic=True)
    assert isinstance(model.sess, ng.Placeholder) and not model.sess
    assert "no session was given; pass session=" in repr(model.sess)
    assert ng.to_graph(model) == spec


def test_monitored_session_is_recorded_as_a_session(graph: tf.Graph) -> None:
    tf1.train.get_or_create_global_step()
    x = tf1.placeholder(tf.float32, [], name="x")
    with tf1.train.MonitoredSession() as monitored:
        spec = ng.to_graph(Holder(x=x, sess=monitored))
        model = ng.from_graph(spec, graph, generic=True, session=monitored)
        assert model.sess is monitored
    assert _fields(spec)["sess"] == "session MonitoredSession"


# --------------------------------------------------------------------------- savers


def _model_with_saver() -> tuple[Holder, Any]:
    w = tf1.get_variable("w", [2], initializer=tf1.zeros_initializer())
    bump = tf1.assign_add(w, [1.0, 2.0])
    model = Holder(w=w, bump=bump, saver=tf1.train.Saver([w], max_to_keep=3))
    return model, tf1.global_variables_initializer()


def test_saver_is_recorded_by_its_saver_def(graph: tf.Graph) -> None:
    model, _ = _model_with_saver()
    spec = ng.to_graph(model)
    assert _fields(spec)["saver"] == (
        "saver save/Const:0 save/control_dependency:0 save/restore_all "
        "max_to_keep=3 keep_checkpoint_every_n_hours=10000.0 sharded=false version=2"
    )
    assert {k: v for k, v in spec.flatten().items() if k.startswith("saver")} == {
        "saver.filename": "save/Const:0",
        "saver.save": "save/control_dependency:0",
        "saver.restore": "save/restore_all",
    }


def test_rebuilt_saver_saves_and_restores_on_an_imported_graph(tmp_path: Path) -> None:
    with tf.Graph().as_default() as first:
        model, init = _model_with_saver()
        spec = ng.to_graph(model)
        meta = tf1.train.export_meta_graph()
        with tf1.Session() as sess:
            sess.run(init)
            sess.run(model.bump)
            checkpoint = model.saver.save(sess, str(tmp_path / "ckpt"))
    with tf.Graph().as_default() as second:
        tf1.train.import_meta_graph(meta, import_scope="copy")
        ops_before = len(second.get_operations())
        rebuilt = ng.from_graph(
            _yaml_round_trip(spec), second, import_scope="copy", allow=["test_tfleaves.*"]
        )
        assert isinstance(rebuilt.saver, tf1.train.Saver)
        assert len(second.get_operations()) == ops_before  # the Saver built no new ops
        assert rebuilt.saver.saver_def.max_to_keep == 3
        with tf1.Session() as sess:
            rebuilt.saver.restore(sess, checkpoint)
            np.testing.assert_array_equal(sess.run(rebuilt.w), [1.0, 2.0])
            sess.run(rebuilt.bump)
            again = rebuilt.saver.save(sess, str(tmp_path / "again"))
        with tf1.Session() as sess:
            rebuilt.saver.restore(sess, again)
            np.testing.assert_array_equal(sess.run(rebuilt.w), [2.0, 4.0])
    assert first is not second
    assert ng.to_graph(rebuilt).rescope("copy/", "") == spec


def test_saver_names_are_rescoped_and_checked(graph: tf.Graph) -> None:
    model, _ = _model_with_saver()
    spec = ng.to_graph(model).rescope("save/", "gone/")
    assert _fields(spec)["saver"].endswith(
        "max_to_keep=3 keep_checkpoint_every_n_hours=10000.0 sharded=false version=2"
    )
    with pytest.raises(
        ng.BindingError, match=r"saver\.filename: no tensor 'gone/Const:0'"
    ) as caught:
        ng.from_graph(spec, graph, generic=True)
    assert {p.path for p in caught.value.problems} == {
        "saver.filename",
        "saver.save",
        "saver.restore",
    }


def test_saver_bound_to_tensors_of_the_wrong_dtype_is_refused(graph: tf.Graph) -> None:
    model, _ = _model_with_saver()
    tf.constant(1.0, name="number")
    text = ng.to_graph(model).to_yaml().replace("save/control_dependency:0", "number:0")
    with pytest.raises(
        ng.BindingError,
        match=r"saver \(line \d+\): saver binding: its save tensor 'number:0' is float32, "
        "not string",
    ):
        ng.from_graph(ng.Spec.from_yaml(text), graph, generic=True)


def test_saver_that_is_not_built_is_skipped(graph: tf.Graph) -> None:
    tf1.get_variable("w", [1])
    spec = ng.to_graph(Holder(saver=tf1.train.Saver(defer_build=True)))
    assert "not built yet (defer_build=True)" in spec.skipped["saver"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("saver a:0 b:0", "'saver' takes the filename tensor, the save tensor and the restore op"),
        ("saver a:0 b:0 c:0", "'saver' takes the filename tensor"),
        ("saver a:0 b:0 c max_to_keep=x", r"bad value in 'max_to_keep=x'"),
        ("saver a:0 b:0 c colour=red", r"'colour=red' is not one of those flags"),
        (
            "saver a:0 b:0 c sharded=true sharded=true",
            r"'sharded=true' is not one of those flags \(or repeats\)",
        ),
    ],
)
def test_malformed_saver_text_is_a_spec_error(text: str, message: str) -> None:
    with pytest.raises(ng.SpecError, match=rf"m\.yaml: saver \(line 4\): .*{message}"):
        ng.Spec.from_yaml(f"nestgraph: 1\nroot:\n  dict:\n    saver: {text}\n", source="m.yaml")


# --------------------------------------------------------------------------- dtypes, shapes

_DTYPES = [
    tf.float16,
    tf.float32,
    tf.float64,
    tf.int8,
    tf.int32,
    tf.int64,
    tf.bool,
    tf.string,
    tf.complex64,
    tf.bfloat16,
    tf.uint8,
    tf.resource,
    tf.variant,
]


@pytest.mark.parametrize("dtype", _DTYPES, ids=lambda d: d.name)
def test_dtype_round_trips_as_a_readable_name(dtype: tf.DType, graph: tf.Graph) -> None:
    spec = ng.to_graph(Holder(dtype=dtype))
    assert _fields(spec)["dtype"] == f"dtype {dtype.name}"
    rebuilt = ng.from_graph(_yaml_round_trip(spec), graph, generic=True)
    assert isinstance(rebuilt.dtype, tf.DType) and rebuilt.dtype == dtype


def test_unknown_dtype_name_is_a_placeholder(graph: tf.Graph) -> None:
    spec = ng.Spec.from_yaml("nestgraph: 1\nroot: {dict: {d: dtype float99}}\n")
    rebuilt = ng.from_graph(spec, graph)
    assert isinstance(rebuilt["d"], ng.Placeholder)
    assert "no dtype of that name" in repr(rebuilt["d"])


_dims = st.lists(st.one_of(st.none(), st.integers(0, 2**40)), max_size=6)


@given(st.one_of(st.none(), _dims))
def test_shape_round_trips(dims: list[int | None] | None) -> None:
    shape = tf.TensorShape(dims)
    spec = ng.to_graph(Holder(shape=shape))
    text = _fields(spec)["shape"]
    assert text == "shape " + format_shape(dims)
    assert parse_shape(text.removeprefix("shape ")) == dims
    with tf.Graph().as_default() as graph:
        rebuilt = ng.from_graph(_yaml_round_trip(spec), graph, generic=True)
    assert isinstance(rebuilt.shape, tf.TensorShape)
    assert rebuilt.shape.as_list() == dims if dims is not None else rebuilt.shape.rank is None


@pytest.mark.parametrize("text", ["[None, 4", "[-1]", "(2, 3)", "[1,,2]", "[x]", "Unknown"])
def test_malformed_shape_is_a_spec_error(text: str) -> None:
    with pytest.raises(ng.SpecError, match=r"s \(line 2\): a shape is written \[None, 4\]"):
        ng.Spec.from_yaml(f"nestgraph: 1\nroot: {{dict: {{s: 'shape {text}'}}}}\n")


@given(st.text(max_size=30))
def test_hostile_leaf_text_is_a_spec_error_or_a_valid_leaf(text: str) -> None:
    for kind in ("session", "saver", "dtype", "shape"):
        try:
            spec = ng.Spec.from_dict({"nestgraph": 1, "root": f"{kind} {text}"})
        except ng.SpecError:
            continue
        assert ng.Spec.from_dict(spec.to_dict()) == spec


def test_assign_to_a_resource_variable_is_recorded_as_its_op(graph: tf.Graph) -> None:
    source = tf1.get_variable("source", [2], use_resource=True)
    target = tf1.get_variable("target", [2], use_resource=True)
    spec = ng.to_graph(Holder(copy=[tf1.assign(target, source)], add=target.assign_add(source)))
    assert spec.flatten() == {"copy.0": "AssignVariableOp", "add": "AssignAddVariableOp"}
    assert _fields(spec)["copy"] == ["op AssignVariableOp"]
    rebuilt = ng.from_graph(_yaml_round_trip(spec), graph, generic=True)
    assert rebuilt.copy[0] is graph.get_operation_by_name("AssignVariableOp")
