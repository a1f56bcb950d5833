"""The walker: what is recorded, in which order, and what is skipped and why."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import enum
import functools
import io
import logging
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np
import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph.nodes import (
    MAX_DEPTH,
    DictNode,
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    TupleNode,
    Value,
)
from nestgraph.walker import walk

T = TypeVar("T")
tf1 = tf.compat.v1
Point = collections.namedtuple("Point", "x y")


class Box(ng.GraphConvertible):
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


@dataclasses.dataclass
class Config:
    depth: int
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlots:
    a: int
    b: float


class Plain:
    def __init__(self) -> None:
        self.x = 1


def test_fields_keep_definition_order() -> None:
    node = walk(Box(zeta=1, alpha=2, mid=3))
    assert isinstance(node, ObjectNode)
    assert list(node.fields) == ["zeta", "alpha", "mid"]
    assert node.class_path == "test_walker:Box"


def test_plain_values_are_values() -> None:
    node = walk(Box(a=None, b=True, c=3, d=2.5, e="text"))
    assert isinstance(node, ObjectNode)
    assert [v for v in node.fields.values()] == [
        Value(None),
        Value(True),
        Value(3),
        Value(2.5),
        Value("text"),
    ]


def test_graph_leaves(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [None, 2], name="x")
    with tf1.variable_scope("enc"):
        w = tf1.get_variable("w", [2, 2])
    y = tf.matmul(x, w, name="y")
    sp = tf.SparseTensor(
        tf1.placeholder(tf.int64, [None, 2], name="i"),
        tf1.placeholder(tf.float32, [None], name="v"),
        tf1.placeholder(tf.int64, [2], name="s"),
    )
    node = walk(Box(x=x, w=w, y=y, op=y.op, sp=sp))
    assert isinstance(node, ObjectNode)
    assert node.fields == {
        "x": Leaf("tensor", ("x:0",)),
        "w": Leaf("variable", ("enc/w:0",)),
        "y": Leaf("tensor", ("y:0",)),
        "op": Leaf("op", ("y",)),
        "sp": Leaf("sparse", ("i:0", "v:0", "s:0")),
    }


def test_containers() -> None:
    node = walk(Box(l=[1, 2], t=(3,), d={"k": 4}, p=Point(5, 6), empty=()))
    assert isinstance(node, ObjectNode)
    f = node.fields
    assert f["l"] == ListNode([Value(1), Value(2)])
    assert f["t"] == TupleNode([Value(3)])
    assert f["d"] == DictNode({"k": Value(4)})
    assert f["p"] == NamedTupleNode("test_walker:Point", {"x": Value(5), "y": Value(6)})
    assert f["empty"] == TupleNode([])


def test_dataclasses_including_frozen_slots() -> None:
    node = walk(Box(c=Config(3, "x"), f=FrozenSlots(1, 2.0)))
    assert isinstance(node, ObjectNode)
    assert node.fields["c"] == ObjectNode(
        "test_walker:Config", {"depth": Value(3), "name": Value("x")}
    )
    assert node.fields["f"] == ObjectNode(
        "test_walker:FrozenSlots", {"a": Value(1), "b": Value(2.0)}
    )


def test_shared_objects_are_refs_and_cycles_terminate() -> None:
    child = Box(v=1)
    root = Box(first=child, again=child, items=[child])
    child.parent = root
    node = walk(root)
    assert isinstance(node, ObjectNode)
    assert isinstance(node.fields["first"], ObjectNode)
    assert node.fields["again"] == Ref(("first",))
    assert node.fields["items"] == ListNode([Ref(("first",))])
    first = node.fields["first"]
    assert isinstance(first, ObjectNode)
    assert first.fields["parent"] == Ref(())


def test_shared_list_is_a_ref_but_empty_tuples_are_not() -> None:
    shared: list[int] = [1]
    node = walk(Box(a=shared, b=shared, c=(), d=()))
    assert isinstance(node, ObjectNode)
    assert node.fields["b"] == Ref(("a",))
    assert node.fields["d"] == TupleNode([])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (object(), "builtins:object is not a graph element"),
        (lambda: 1, "a lambda has no importable name"),
        (np.zeros(300), r"numpy:ndarray float64 \[300\] has 300 elements, more than the 256"),
        ({1: "a"}, "dict with a non-string key 1 \\(int\\)"),
        (collections.OrderedDict(a=1), "collections:OrderedDict derives from the built-in dict"),
        (np.str_("a"), "numpy:str_ scalars are not recorded"),
        (tf.constant(1.0), "eager tensor .* has no graph name"),
    ],
)
def test_unrecordable_values_are_skipped_with_reason(value: Any, reason: str) -> None:
    node = walk(Box(thing=value))
    assert isinstance(node, ObjectNode)
    skipped = node.fields["thing"]
    assert isinstance(skipped, Skipped)
    assert re.search(reason, skipped.reason), skipped.reason


def test_session_is_recorded_as_a_session(graph: tf.Graph) -> None:
    with tf1.Session(graph=graph) as sess:
        spec = ng.to_graph(Box(sess=sess, n=1))
    assert spec.skipped == {}
    assert spec.to_dict()["fields"]["sess"] == "session Session"


def test_registered_and_plain_classes_are_walked_alike() -> None:
    class Local:
        def __init__(self) -> None:
            self.x = 1

    expected = ObjectNode(
        "test_walker:test_registered_and_plain_classes_are_walked_alike.<locals>.Local",
        {"x": Value(1)},
    )
    node = walk(Box(o=Local()))
    assert isinstance(node, ObjectNode)
    assert node.fields["o"] == expected
    ng.register(Local)  # registration changes the rebuild policy, not the walk
    node = walk(Box(o=Local()))
    assert isinstance(node, ObjectNode)
    assert node.fields["o"] == expected


def test_fields_argument_selects_and_orders() -> None:
    model = Box(a=1, b=2, c=3)
    node = walk(model, ["c", "a"])
    assert isinstance(node, ObjectNode)
    assert list(node.fields) == ["c", "a"]
    node = walk(model, model.__dict__)
    assert isinstance(node, ObjectNode)
    assert list(node.fields) == ["a", "b", "c"]


def test_fields_argument_names_missing_field() -> None:
    with pytest.raises(ng.NestgraphError, match="^nope: Box object has no field 'nope'"):
        walk(Box(a=1), ["nope"])


def test_self_reference_through_fields_argument() -> None:
    model = Box(a=1)
    model.me = model
    node = walk(model, ["me"])
    assert isinstance(node, ObjectNode)
    assert node.fields["me"] == Ref(())


def test_too_deep_nesting_names_the_path() -> None:
    value: list[Any] = []
    top = value
    for _ in range(MAX_DEPTH + 5):
        nxt: list[Any] = []
        value.append(nxt)
        value = nxt
    with pytest.raises(ng.NestgraphError, match=r"^(0\.){99}0: nesting deeper than 100"):
        walk(top)


def test_non_object_root() -> None:
    assert walk([1, "a"]) == ListNode([Value(1), Value("a")])


# --------------------------------------------------------------------------- plain objects


class Recorder:
    """A plain class whose property and __getattr__ record every call."""

    calls: list[str] = []  # noqa: RUF012 - shared on purpose: instances record here

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    @property
    def computed(self) -> int:
        Recorder.calls.append("property")
        return 1

    def __getattr__(self, name: str) -> Any:
        Recorder.calls.append(f"getattr {name}")
        raise AttributeError(name)


class Slotted:
    __slots__ = ("a", "b", "unset")

    def __init__(self) -> None:
        self.b = 2
        self.a = 1


class Inner:
    def __init__(self, x: Any) -> None:
        self.x = x


def test_plain_objects_are_walked_at_any_depth_in_definition_order(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [None], name="x")
    model = Recorder(zeta=Plain(), alpha=[Inner(Inner(x))], slots=Slotted())
    Recorder.calls.clear()
    node = walk(model)
    assert Recorder.calls == []  # no property evaluated, no __getattr__ triggered
    assert node == ObjectNode(
        "test_walker:Recorder",
        {
            "zeta": ObjectNode("test_walker:Plain", {"x": Value(1)}),
            "alpha": ListNode(
                [
                    ObjectNode(
                        "test_walker:Inner",
                        {"x": ObjectNode("test_walker:Inner", {"x": Leaf("tensor", ("x:0",))})},
                    )
                ]
            ),
            # Slots in their declared order; an unset slot holds nothing.
            "slots": ObjectNode("test_walker:Slotted", {"a": Value(1), "b": Value(2)}),
        },
    )


def test_plain_class_rebuild_stays_under_the_class_policy(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [None], name="x")
    spec = ng.to_graph(Inner(Inner(x)))
    with pytest.raises(
        ng.ClassNotAllowedError,
        match=r"class 'test_walker:Inner' .*pass allow=\['test_walker.Inner'\] or "
        r"allow=\['test_walker.\*'\]",
    ):
        ng.from_graph(spec, graph)
    rebuilt = ng.from_graph(spec, graph, allow=["test_walker.Inner"])
    assert type(rebuilt) is Inner and type(rebuilt.x) is Inner
    assert rebuilt.x.x is x
    generic = ng.from_graph(spec, graph, generic=True)
    assert isinstance(generic, ng.Node) and generic.nestgraph_class == "test_walker:Inner"
    assert generic.x.x is x


class MyThread(threading.Thread):
    pass


class Colour(enum.Enum):
    RED = 1


class Table(dict):  # type: ignore[type-arg]
    pass


def _numbers() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: threading.Thread(), "threading:Thread: a thread belongs to the process"),
        (MyThread, "test_walker:MyThread: a thread belongs to the process"),
        (threading.Lock, "a lock or other synchronisation object"),
        (threading.Event, "threading:Event: a lock or other synchronisation object"),
        (lambda: io.StringIO("x"), "_io:StringIO: an open file or stream cannot be saved"),
        (lambda: sys, "builtins:module: a module is code"),
        (_numbers, "builtins:generator: a generator's .*paused state"),
        (lambda: Colour.RED, "test_walker:Colour: an enum member is not recorded"),
        (Table, "test_walker:Table derives from the built-in dict"),
        (lambda: logging.getLogger("x"), "logging:Logger is a logging object"),
        (lambda: {1, 2}, "builtins:set is not a graph element"),
        (lambda: Plain, "builtins:type: a class is code"),
        (
            lambda: functools.partial(print),
            "functools:partial is .*functools:partial, a type implemented in C",
        ),
        (tf.Graph, "tensorflow.python.framework.ops:Graph: a tf.Graph holds the model"),
        (lambda: tf1.train.AdamOptimizer(0.1), "AdamOptimizer: an optimizer object is Python-side"),
    ],
)
def test_library_objects_are_skipped_with_a_reason_that_fits(
    make: Callable[[], Any], reason: str
) -> None:
    node = walk(Box(thing=make()))
    assert isinstance(node, ObjectNode)
    skipped = node.fields["thing"]
    assert isinstance(skipped, Skipped)
    assert re.search(reason, skipped.reason), skipped.reason
    # Subclassing GraphConvertible would not make any of these recordable.
    assert "GraphConvertible" not in skipped.reason and "@ng.register" not in skipped.reason


def test_open_file_and_file_writer_are_skipped(graph: tf.Graph, tmp_path: Any) -> None:
    with open(tmp_path / "f.txt", "w") as handle:
        node = walk(Box(handle=handle))
    assert isinstance(node, ObjectNode)
    assert isinstance(node.fields["handle"], Skipped)
    assert "an open file or stream" in node.fields["handle"].reason
    writer = tf1.summary.FileWriter(str(tmp_path / "events"))
    try:
        node = walk(Box(writer=writer))
    finally:
        writer.close()
    assert isinstance(node, ObjectNode)
    assert isinstance(node.fields["writer"], Skipped)
    assert "a tf.summary.FileWriter writes event files" in node.fields["writer"].reason


def test_markers_walk_back_to_the_leaf_they_stand_for() -> None:
    node = walk(Box(gone=ng.SkippedField("why"), fn=ng.Placeholder("function", "m:f", "no")))
    assert isinstance(node, ObjectNode)
    assert node.fields == {"gone": Skipped("why"), "fn": Leaf("function", value="m:f")}


# --------------------------------------------------------------------------- layer objects


@pytest.mark.filterwarnings("ignore:`tf.nn.rnn_cell.BasicLSTMCell` is deprecated")
def test_legacy_layers_and_cells_are_objects_of_their_variables(graph: tf.Graph) -> None:
    x = tf1.placeholder(tf.float32, [None, 3], name="x")
    dense = tf1.layers.Dense(2, name="dense")
    norm = tf1.layers.BatchNormalization(name="norm")
    norm(dense(x), training=True)
    cell = tf1.nn.rnn_cell.BasicLSTMCell(2, name="cell")
    tf1.nn.dynamic_rnn(cell, tf1.placeholder(tf.float32, [None, 4, 3]), dtype=tf.float32)
    spec = ng.to_graph(Box(enc=Box(dense=dense), norm=norm, cell=cell))
    flat = spec.flatten()
    assert flat == {
        "enc.dense.kernel": "dense/kernel:0",
        "enc.dense.bias": "dense/bias:0",
        "norm.gamma": "norm/gamma:0",
        "norm.beta": "norm/beta:0",
        "norm.moving_mean": "norm/moving_mean:0",
        "norm.moving_variance": "norm/moving_variance:0",
        # An RNN cell keeps its variables as _kernel and _bias.
        "cell.kernel": "rnn/cell/kernel:0",
        "cell.bias": "rnn/cell/bias:0",
    }
    data = spec.to_dict()["fields"]
    assert data["enc"]["fields"]["dense"]["class"] == "tf_keras.src.legacy_tf_layers.core:Dense"
    assert data["cell"]["class"] == "tf_keras.src.layers.rnn.legacy_cells:BasicLSTMCell"
    assert spec.skipped == {}


def test_keras_layers_come_back_as_nodes_holding_their_variables(graph: tf.Graph) -> None:
    import tf_keras

    x = tf1.placeholder(tf.float32, [None, 3], name="x")
    layer = tf_keras.layers.Dense(2, name="head")
    out = layer(x)
    model = Box(head=layer, out=out)
    spec = ng.to_graph(model)
    assert spec.flatten() == {
        "head.kernel": "head/kernel:0",
        "head.bias": "head/bias:0",
        "out": out.name,
    }
    for kwargs in ({}, {"allow": ["tf_keras.*"]}):
        rebuilt = ng.from_graph(spec, graph, **kwargs)  # no generic=True needed
        assert isinstance(rebuilt.head, ng.Node)
        assert rebuilt.head.nestgraph_class == "tf_keras.src.layers.core.dense:Dense"
        assert rebuilt.head.kernel is layer.kernel
    assert ng.to_graph(rebuilt) == spec


def test_unbuilt_layer_is_an_empty_object(graph: tf.Graph) -> None:
    node = walk(Box(dense=tf1.layers.Dense(2)))
    assert isinstance(node, ObjectNode)
    assert node.fields["dense"] == ObjectNode("tf_keras.src.legacy_tf_layers.core:Dense", {})


class Typed(Generic[T]):
    def __init__(self, value: T) -> None:
        self.value = value


def test_namespaces_and_generic_classes_are_objects() -> None:
    node = walk(Box(a=argparse.Namespace(lr=0.1), b=types.SimpleNamespace(units=4), c=Typed(3)))
    assert isinstance(node, ObjectNode)
    assert node.fields == {
        "a": ObjectNode("argparse:Namespace", {"lr": Value(0.1)}),
        "b": ObjectNode("types:SimpleNamespace", {"units": Value(4)}),
        "c": ObjectNode("test_walker:Typed", {"value": Value(3)}),
    }


def test_module_holding_variables_in_a_list_and_sub_layers(graph: tf.Graph) -> None:
    import tf_keras

    class Net(tf_keras.Model):  # a user's Keras model: walked by the layer rule
        def __init__(self) -> None:
            super().__init__()
            self.first = tf_keras.layers.Dense(2, name="first")
            self.blocks = [tf_keras.layers.Dense(2, name=f"block_{i}") for i in range(2)]

        def call(self, x: Any) -> Any:
            for layer in (self.first, *self.blocks):
                x = layer(x)
            return x

    module = tf.Module(name="m")
    module.ws = [tf.Variable(1.0, name="w0"), tf.Variable(2.0, name="w1")]
    net = Net()
    net(tf1.placeholder(tf.float32, [None, 3]))
    spec = ng.to_graph(Box(module=module, net=net))
    flat = spec.flatten()
    assert flat["module.ws.0"] == "w0:0" and flat["module.ws.1"] == "w1:0"
    assert [k for k in flat if k.startswith("net.")] == [
        "net.first.kernel",
        "net.first.bias",
        "net.blocks.0.kernel",
        "net.blocks.0.bias",
        "net.blocks.1.kernel",
        "net.blocks.1.bias",
    ]
    assert spec.skipped == {}


def test_sequential_model_records_its_layers(graph: tf.Graph) -> None:
    import tf_keras

    model = tf_keras.Sequential(
        [tf_keras.layers.Dense(2, input_shape=(3,), name="a"), tf_keras.layers.Dense(1, name="b")]
    )
    spec = ng.to_graph(Box(model=model))
    assert spec.flatten() == {
        "model.layers.1.kernel": "a/kernel:0",
        "model.layers.1.bias": "a/bias:0",
        "model.layers.2.kernel": "b/kernel:0",
        "model.layers.2.bias": "b/bias:0",
    }
    # The input layer holds no variables: an empty object, not a loss.
    assert spec.to_dict()["fields"]["model"]["fields"]["layers"][0]["class"].endswith(":InputLayer")
