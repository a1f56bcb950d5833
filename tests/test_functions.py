"""Functions as spec leaves: recorded by qualified name, resolved only under ``allow``."""

from __future__ import annotations

import functools
import sys
from json import dumps as json_dumps
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given
from hypothesis import strategies as st

import nestgraph as ng

tf1 = tf.compat.v1


def leaky(x: Any) -> Any:
    """A user's activation function, defined at module level."""
    return tf.maximum(x, 0.1 * x)


class Acts:
    @staticmethod
    def swish(x: Any) -> Any:
        return x * tf.sigmoid(x)


def _hidden(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)

    wrapper.__qualname__ = "not_here"  # claims a name its module does not hold
    return wrapper


misnamed = _hidden(leaky)


def _spec_of(**fields: Any) -> ng.Spec:
    return ng.Spec.from_yaml(ng.to_graph(fields).to_yaml())


def _fields(spec: ng.Spec) -> dict[str, Any]:
    return spec.to_dict()["root"]["dict"]  # type: ignore[no-any-return]


def test_functions_are_recorded_where_they_are_defined() -> None:
    spec = _spec_of(relu=tf.nn.relu, softplus=tf.nn.softplus, leaky=leaky, swish=Acts.swish)
    assert _fields(spec) == {
        "relu": "function tensorflow.python.ops.gen_nn_ops:relu",
        "softplus": "function tensorflow.python.ops.math_ops:softplus",
        "leaky": "function test_functions:leaky",
        "swish": "function test_functions:Acts.swish",
    }


def test_without_allow_a_function_is_a_placeholder_saying_what_it_was(graph: tf.Graph) -> None:
    spec = _spec_of(relu=tf.nn.relu, leaky=leaky)
    model = ng.from_graph(spec, graph)
    relu = model["relu"]
    assert isinstance(relu, ng.Placeholder) and not relu
    assert "function tensorflow.python.ops.gen_nn_ops:relu" in repr(relu)
    with pytest.raises(
        ng.ClassNotAllowedError,
        match=r"function tensorflow\.python\.ops\.gen_nn_ops:relu: not resolved: .*"
        r"pass allow=\['tensorflow\.python\.ops\.gen_nn_ops\.relu'\] "
        r"\(or allow=\['tensorflow\.\*'\]\)",
    ):
        relu(tf.constant(1.0))
    assert ng.to_graph(model) == spec  # a placeholder writes the same leaf again


def test_with_allow_the_function_itself_comes_back(graph: tf.Graph) -> None:
    spec = _spec_of(relu=tf.nn.relu, leaky=leaky, swish=Acts.swish)
    model = ng.from_graph(
        spec,
        graph,
        allow=["tensorflow.python.ops.gen_nn_ops.relu", "test_functions.*"],
    )
    assert model["relu"] is tf.nn.relu
    assert model["leaky"] is leaky
    assert model["swish"] is Acts.swish
    x = tf1.placeholder(tf.float32, [2])
    with tf1.Session() as sess:
        out = sess.run(model["leaky"](x), {x: [-1.0, 2.0]})
    np.testing.assert_allclose(out, [-0.1, 2.0])


def test_a_module_is_imported_only_when_allow_covers_it(tmp_path: Path, graph: tf.Graph) -> None:
    (tmp_path / "ng_fn_mod.py").write_text(
        "calls = []\n"
        "def act(x):\n    return x\n"
        "def __getattr__(name):\n    calls.append(name)\n    raise AttributeError(name)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        spec = ng.Spec.from_yaml(
            "nestgraph: 1\nroot: {dict: {a: function ng_fn_mod:act, b: function ng_fn_mod:gone}}\n"
        )
        model = ng.from_graph(spec, graph, allow=["other.*"])
        assert "ng_fn_mod" not in sys.modules
        assert isinstance(model["a"], ng.Placeholder)
        model = ng.from_graph(spec, graph, allow=["ng_fn_mod.*"])
        module = sys.modules["ng_fn_mod"]
        assert model["a"] is module.act
        # Names are read from the module's __dict__: its __getattr__ never runs.
        assert isinstance(model["b"], ng.Placeholder)
        assert "ng_fn_mod:gone names nothing, not a function" in repr(model["b"])
        assert module.calls == []
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("ng_fn_mod", None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("builtins:eval", "builtins are never resolved"),
        ("test_functions:json_dumps", "resolves to json:dumps, which is defined elsewhere"),
        ("test_functions:Acts", "names a type, not a function"),
        ("os:getcwd", "names a builtin_function_or_method, not a function"),
        ("no_such_module_xyz:f", "module 'no_such_module_xyz' cannot be imported"),
    ],
)
def test_refused_paths_come_back_as_placeholders_even_when_allowed(
    text: str, reason: str, graph: tf.Graph
) -> None:
    spec = ng.Spec.from_yaml(f"nestgraph: 1\nroot: function {text}\n")
    found = ng.from_graph(spec, graph, allow=ng.UNSAFE_ALLOW_ALL)
    assert isinstance(found, ng.Placeholder)
    assert reason in repr(found)
    assert json_dumps  # imported for the re-export case above


def _local() -> Any:
    def inner(x: Any) -> Any:
        return x

    return inner


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda x: x, "a lambda has no importable name"),
        (_local(), "function _local.<locals>.inner is defined inside another function"),
        (misnamed, "function test_functions:not_here cannot be found again under that name"),
    ],
)
def test_functions_without_an_importable_name_are_skipped(fn: Any, reason: str) -> None:
    spec = ng.to_graph({"f": fn})
    assert reason in spec.skipped["f"]


@given(st.text(max_size=40))
@example("ng_never_imported_xyz:f")
@example("json.tool:main")
def test_hostile_function_text_never_imports_without_allow(text: str) -> None:
    try:
        spec = ng.Spec.from_dict({"nestgraph": 1, "root": f"function {text}"})
    except ng.SpecError as exc:
        assert "a function is written 'function package.module:qualname'" in str(exc)
        return
    module = text.split(":", 1)[0]
    was_imported = module in sys.modules
    with tf.Graph().as_default() as graph:
        found = ng.from_graph(spec, graph)
    assert isinstance(found, ng.Placeholder)
    assert (module in sys.modules) == was_imported
