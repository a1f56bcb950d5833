"""The registries (nestgraph.registry): trusted classes and leaf handlers."""

from __future__ import annotations

import fractions
import gc
import weakref

import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph import registry
from nestgraph.nodes import Leaf

tf1 = tf.compat.v1


def _register_ragged() -> None:
    ng.register_leaf(
        tf.RaggedTensor,
        kind="ragged",
        parts=["values", "row_splits"],
        write=lambda rt: (rt.values, rt.row_splits),
        rebuild=lambda values, row_splits: tf.RaggedTensor.from_row_splits(
            values, row_splits, validate=False
        ),
        override=True,  # the suite registers it more than once
    )


@ng.register
class Holder:
    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def test_ragged_tensor_handler_round_trips(graph: tf.Graph) -> None:
    _register_ragged()
    values = tf1.placeholder(tf.float32, [None], name="values")
    splits = tf1.placeholder(tf.int64, [None], name="splits")
    ragged = tf.RaggedTensor.from_row_splits(values, splits, validate=False)
    spec = ng.to_graph(Holder(r=ragged))
    assert f"r: ragged {ragged.values.name} {ragged.row_splits.name}" in spec.to_yaml()
    assert spec.flatten() == {
        "r.values": ragged.values.name,
        "r.row_splits": ragged.row_splits.name,
    }
    again = ng.from_graph(ng.Spec.from_yaml(spec.to_yaml()), graph)
    assert isinstance(again.r, tf.RaggedTensor)
    assert again.r.values is ragged.values and again.r.row_splits is ragged.row_splits
    moved = spec.rescope("values", "renamed")
    assert moved.flatten()["r.values"].startswith("renamed")


def test_ragged_spec_with_a_bad_part_names_the_path(graph: tf.Graph) -> None:
    _register_ragged()
    text = "nestgraph: 1\nclass: test_registry:Holder\nfields:\n  r: ragged only_one:0\n"
    with pytest.raises(ng.SpecError, match=r"r \(line 4\): 'ragged' takes two tensor names"):
        ng.Spec.from_yaml(text)


def test_a_type_registers_once_unless_override() -> None:
    class Thing:
        pass

    ng.register_leaf(Thing, kind="thing-a", encode=lambda t: "x", decode=lambda s: Thing())
    with pytest.raises(ValueError, match="already registered; pass override=True"):
        ng.register_leaf(Thing, kind="thing-b", encode=lambda t: "y", decode=lambda s: Thing())
    ng.register_leaf(
        Thing, kind="thing-b", encode=lambda t: "y", decode=lambda s: Thing(), override=True
    )
    assert ng.to_graph(Holder(t=Thing())).flatten() == {}
    assert "t: thing-b y" in ng.to_graph(Holder(t=Thing())).to_yaml()
    assert registry.handler_for_kind("thing-a") is None


def test_kind_words_are_checked() -> None:
    with pytest.raises(ValueError, match="reserved"):
        ng.register_leaf(complex, kind="ref", encode=str, decode=complex)
    with pytest.raises(ValueError, match="lower-case word"):
        ng.register_leaf(complex, kind="Bad Kind", encode=str, decode=complex)
    with pytest.raises(ValueError, match="already registered"):
        ng.register_leaf(complex, kind="tensor", encode=str, decode=complex)
    with pytest.raises(TypeError, match="takes a type"):
        ng.register_leaf("complex", kind="cplx", encode=str, decode=complex)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="write= and rebuild="):
        ng.register_leaf(complex, kind="cplx")


def test_value_leaf_round_trips_and_newest_registration_wins(graph: tf.Graph) -> None:
    holder = Holder(f=fractions.Fraction(3, 4))
    before = ng.to_graph(holder).root.fields["f"]  # type: ignore[attr-defined]
    assert not isinstance(before, Leaf)  # a plain object until a handler says otherwise
    ng.register_leaf(
        fractions.Fraction, kind="fraction", encode=str, decode=fractions.Fraction, override=True
    )
    spec = ng.to_graph(holder)  # the walker's type cache was cleared by the registration
    assert spec.root.fields["f"] == Leaf("fraction", value="3/4")  # type: ignore[attr-defined]
    again = ng.from_graph(ng.Spec.from_yaml(spec.to_yaml()), graph)
    assert again.f == fractions.Fraction(3, 4)


def test_trusted_classes_are_held_weakly() -> None:
    def make() -> weakref.ref[type]:
        @ng.register
        class Temporary:
            pass

        assert registry.is_trusted(Temporary)
        return weakref.ref(Temporary)

    ref = make()
    gc.collect()
    assert ref() is None


def test_graph_convertible_subclasses_are_trusted() -> None:
    class Sub(ng.GraphConvertible):
        pass

    class Plain:
        pass

    assert registry.is_trusted(Sub) and not registry.is_trusted(Plain)
    with pytest.raises(TypeError, match="takes a class"):
        ng.register(len)  # type: ignore[type-var]


def test_partitioned_variable_is_one_binding_and_comes_back_whole(graph: tf.Graph) -> None:
    emb = tf1.get_variable("emb", [10, 4], partitioner=tf1.fixed_size_partitioner(3))
    spec = ng.to_graph(Holder(emb=emb))
    assert spec.flatten() == {"emb": "emb"}
    assert "emb: partitioned emb" in spec.to_yaml()
    again = ng.from_graph(ng.Spec.from_yaml(spec.to_yaml()), graph)
    assert type(again.emb) is type(emb)
    assert [v.name for v in again.emb] == [v.name for v in emb]
    assert again.emb.get_shape() == emb.get_shape() and again.emb._partitions == emb._partitions
    with tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        a, b = session.run([tf.concat(list(emb), 0), tf.concat(list(again.emb), 0)])
    assert (a == b).all()


def test_partitioned_binding_errors_say_what_to_do(graph: tf.Graph) -> None:
    tf1.get_variable("plain", [2])
    tf1.get_variable("emb", [6, 2], partitioner=tf1.fixed_size_partitioner(2))
    text = (
        "nestgraph: 1\nclass: test_registry:Holder\nfields:\n"
        "  a: partitioned plain\n  b: partitioned emv\n"
    )
    with pytest.raises(ng.BindingError) as info:
        ng.from_graph(ng.Spec.from_yaml(text), graph)
    first, second = info.value.problems
    assert first.path == "a" and "bind it as 'variable plain:0' instead" in first.message
    assert second.path == "b" and "(closest: 'emb')" in second.message
    with pytest.raises(ng.SpecError, match="named without ':N'"):
        ng.Spec.from_yaml(text.replace("partitioned plain", "partitioned plain:0"))
