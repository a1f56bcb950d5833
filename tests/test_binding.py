"""from_graph / check: eager validation, lazy rebuild, identity, policy, remapping."""

from __future__ import annotations

import collections
import copy
import dataclasses
import pickle
from typing import Any

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nestgraph as ng

tf1 = tf.compat.v1
Pair = ng.register(collections.namedtuple("Pair", "a b"))
Loose = collections.namedtuple("Loose", "u v")  # not registered
created: collections.Counter[str] = collections.Counter()


class Counted(ng.GraphConvertible):
    """Counts instances created (by __init__ or by nestgraph's __new__)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        created[cls.__name__] += 1
        return super().__new__(cls)


class Dense(Counted):
    def __init__(self, x: tf.Tensor, n: int, name: str) -> None:
        with tf1.variable_scope(name):
            self.w = tf1.get_variable("w", [x.shape[-1], n])
            self.b = tf1.get_variable("b", [n], initializer=tf1.zeros_initializer())
            self.out = tf.nn.relu(tf.matmul(x, self.w) + self.b)


class Tower(Counted):
    def __init__(self, x: tf.Tensor, name: str, depth: int = 2) -> None:
        with tf1.variable_scope(name):
            self.layers: list[Dense] = []
            for i in range(depth):
                self.layers.append(Dense(x, 3, f"layer_{i}"))
                x = self.layers[-1].out
        self.out = x


class Model(Counted):
    lr = 0.5  # a class default that a rebuilt field must override

    def __init__(self, towers: int = 3) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 4], name="x")
        self.lr = 0.01
        self.towers = [Tower(self.x, f"tower_{i}") for i in range(towers)]
        self.best = self.towers[0]
        self.heads = {"cls": Dense(self.towers[-1].out, 2, "head_cls")}
        self.pair = Pair(7, self.x)
        self.loss = tf.reduce_mean(self.heads["cls"].out, name="loss")
        self.train = tf1.train.GradientDescentOptimizer(0.1).minimize(self.loss, name="train")
        self.towers[1].owner = self


class NotAllowed:
    def __init__(self, t: tf.Tensor) -> None:
        self.t = t


@ng.register
@dataclasses.dataclass(frozen=True)
class Frozen:
    t: Any
    k: int


@ng.register
class Slotted:
    __slots__ = ("n", "t")


@pytest.fixture
def built(graph: tf.Graph) -> tuple[Model, ng.Spec]:
    model = Model()
    return model, ng.to_graph(model)


def test_round_trip_binds_the_same_elements(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    model, spec = built
    again = ng.from_graph(ng.Spec.from_yaml(spec.to_yaml()), graph)
    assert type(again) is Model
    assert again.x is model.x
    assert again.lr == 0.01
    assert again.towers[2].layers[1].w is model.towers[2].layers[1].w
    assert isinstance(again.towers[0].layers[0].w, tf.Variable)
    assert again.train is model.train
    assert again.pair == Pair(7, model.x) and type(again.pair) is Pair
    assert again.heads["cls"].out is model.heads["cls"].out


def test_identity_of_shared_objects_and_cycles(
    built: tuple[Model, ng.Spec], graph: tf.Graph
) -> None:
    _, spec = built
    again = ng.from_graph(spec, graph)
    assert again.best is again.towers[0]
    assert again.towers[1].owner is again


def test_init_is_never_called(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    _, spec = built

    def boom(self: Any, *args: Any) -> None:
        raise AssertionError("__init__ called")

    original = Model.__init__
    Model.__init__ = boom  # type: ignore[method-assign]
    try:
        assert ng.from_graph(spec, graph).lr == 0.01
    finally:
        Model.__init__ = original  # type: ignore[method-assign]


def test_objects_are_created_lazily(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    _, spec = built
    created.clear()
    again = ng.from_graph(spec, graph)
    assert created == {"Model": 1}
    towers = again.towers  # fills the root: tower shells exist, their layers do not
    assert created == {"Model": 1, "Tower": 3, "Dense": 1}  # + the head
    assert "_nestgraph_pending" in towers[2].__dict__
    _ = towers[2].out
    assert created["Dense"] == 3
    assert "_nestgraph_pending" not in towers[2].__dict__


def test_subtree_builds_only_that_part(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    model, spec = built
    created.clear()
    tower = ng.from_graph(spec, graph, subtree="towers.2")
    assert type(tower) is Tower
    assert tower.layers[0].w is model.towers[2].layers[0].w
    assert created == {"Tower": 1, "Dense": 2}


def test_subtree_reaching_outside_keeps_identity(
    built: tuple[Model, ng.Spec], graph: tf.Graph
) -> None:
    _, spec = built
    tower = ng.from_graph(spec, graph, subtree="towers.1")
    assert tower.owner.towers[1] is tower


def test_class_attribute_does_not_shadow_the_rebuilt_field(
    built: tuple[Model, ng.Spec], graph: tf.Graph
) -> None:
    _, spec = built
    assert ng.from_graph(spec, graph).lr == 0.01


def test_every_problem_is_listed_with_path_and_closest(
    built: tuple[Model, ng.Spec], graph: tf.Graph
) -> None:
    _, spec = built
    broken = spec.rescope("tower_1/", "towr_1/").rescope("head_cls/w", "head_cls/W")
    with pytest.raises(ng.BindingError) as info:
        ng.from_graph(broken, graph)
    err = info.value
    assert len(err.problems) == 8  # 2 layers x (w, b, out) + the tower's out + the head's w
    assert err.path == "towers.1.layers.0.w"
    message = str(err)
    assert message.startswith("8 problems:\n")
    assert (
        "towers.1.layers.0.w: no variable 'towr_1/layer_0/w:0' in the graph "
        "(closest: 'tower_1/layer_0/w:0')"
    ) in message
    assert (
        "heads.cls.w: no variable 'head_cls/W:0' in the graph (closest: 'head_cls/w:0')" in message
    )


@pytest.mark.parametrize(
    ("field", "binding", "message"),
    [
        ("v", "op x:0", "bad op name"),  # caught by the spec reader
        ("v", "op loss", None),
        ("v", "op nope", "v \\(line 4\\): no op 'nope' in the graph"),
        ("v", "tensor loss:0", None),
        ("v", "tensor loss:3", "v \\(line 4\\): op 'loss' has 1 output\\(s\\), so no 'loss:3'"),
        ("v", "variable loss:0", "v \\(line 4\\): 'loss:0' is in the graph but is not a variable"),
        ("v", "variable tower_0/layer_0/w:0", None),
    ],
)
def test_kind_checks(
    built: tuple[Model, ng.Spec], graph: tf.Graph, field: str, binding: str, message: str | None
) -> None:
    text = f"nestgraph: 1\nclass: test_binding:Counted\nfields:\n  {field}: {binding}\n"
    if message is None:
        assert ng.from_graph(ng.Spec.from_yaml(text), graph).v is not None
        return
    with pytest.raises((ng.BindingError, ng.SpecError), match=message):
        ng.from_graph(ng.Spec.from_yaml(text), graph)


def test_binding_error_names_the_line(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    text = "nestgraph: 1\nclass: test_binding:Counted\nfields:\n  a: 1\n  v: tensor nope:0\n"
    with pytest.raises(ng.BindingError, match=r"^v \(line 5\): no tensor 'nope:0'"):
        ng.from_graph(ng.Spec.from_yaml(text), graph)


def test_check_reports_without_raising(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    _, spec = built
    assert ng.check(spec, graph).ok
    report = ng.check(spec.rescope("head_cls/", "head_x/"), graph)
    assert not report.ok and not report
    assert [f.path for f in report.problems] == ["heads.cls.w", "heads.cls.b", "heads.cls.out"]
    bad = [f for f in report.findings if not f.ok]
    assert [f.status for f in bad] == ["missing"] * 3
    assert bad[0].closest == "head_cls/w:0"
    assert report.problems[0] == bad[0].problem()
    assert "3 of " in str(report)
    sub = ng.check(spec, graph, subtree="towers.0")
    assert {f.path.split(".")[0] for f in sub.findings} == {"towers"}


def test_import_scope_and_scope_map(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    model, spec = built
    meta = tf1.train.export_meta_graph(graph=graph)
    other = tf.Graph()
    with other.as_default():
        tf1.train.import_meta_graph(meta, import_scope="imported")
    again = ng.from_graph(spec, other, import_scope="imported")
    assert again.towers[0].layers[0].w.name == "imported/tower_0/layer_0/w:0"
    tower = ng.from_graph(spec, graph, subtree="towers.0", scope_map={"tower_0/": "tower_2/"})
    assert tower.out is model.towers[2].out
    with pytest.raises(ng.BindingError, match="spec name 'x:0'"):
        ng.from_graph(spec, graph, import_scope="nowhere")


def test_unallowed_class_is_refused_and_generic_gives_nodes(graph: tf.Graph) -> None:
    t = tf1.placeholder(tf.float32, [], name="t")
    root = Counted()
    root.thing = NotAllowed(t)
    root.tup = Loose(1, t)
    ng.register(NotAllowed)
    spec = ng.to_graph(root)
    from nestgraph import registry

    del registry._TRUSTED[id(NotAllowed)]  # as in a process that never registered it
    with pytest.raises(ng.ClassNotAllowedError) as info:
        ng.from_graph(spec, graph)
    assert info.value.path == "thing"
    assert "pass allow=['test_binding.NotAllowed']" in str(info.value)
    assert "tup: class 'test_binding:Loose'" in str(info.value)

    allowed = ng.from_graph(spec, graph, allow=["test_binding.*"])
    assert type(allowed.thing) is NotAllowed and type(allowed.tup) is Loose

    generic = ng.from_graph(spec, graph, generic=True)
    assert isinstance(generic.thing, ng.Node)
    assert generic.thing.t is t
    assert generic.tup.v is t and generic.tup == (1, t)
    assert "test_binding:NotAllowed" in repr(generic.thing)
    assert generic.thing.nestgraph_class == "test_binding:NotAllowed"
    assert ng.to_graph(generic) == spec  # a generic model writes the same spec back


def test_generic_root_when_nothing_is_importable(graph: tf.Graph) -> None:
    tf1.placeholder(tf.float32, [], name="t")
    text = (
        "nestgraph: 1\nclass: gone.pkg:Model\nfields:\n  t: tensor t:0\n"
        "  kids: [{class: gone.pkg:Kid, fields: {}}]\n"
    )
    spec = ng.Spec.from_yaml(text)
    with pytest.raises(ng.ClassNotAllowedError, match="2 problems"):
        ng.from_graph(spec, graph)
    model = ng.from_graph(spec, graph, generic=True)
    assert isinstance(model, ng.Node) and model.t.name == "t:0"
    assert isinstance(model.kids[0], ng.Node)


def test_frozen_dataclass_and_slots(graph: tf.Graph) -> None:
    t = tf1.placeholder(tf.float32, [], name="t")
    s = Slotted()
    s.t, s.n = t, 3
    root = Counted()
    root.f = Frozen(t, 2)
    root.s = s
    again = ng.from_graph(ng.to_graph(root), graph)
    assert again.f == Frozen(t, 2)
    assert again.s.t is t and again.s.n == 3


def test_graph_convertible_binds_into_existing_instance(
    built: tuple[Model, ng.Spec], graph: tf.Graph
) -> None:
    model, spec = built
    target = Model.__new__(Model)
    assert target.from_graph(spec, graph) is target
    assert target.towers[1].owner is target
    assert target.x is model.x
    tower = Tower.__new__(Tower).from_graph(spec, graph, subtree="towers.0")
    assert tower.out is model.towers[0].out


def test_from_graph_needs_a_spec() -> None:
    with pytest.raises(TypeError, match="expected an ng.Spec"):
        ng.from_graph("model.yaml")  # type: ignore[arg-type]


def test_bad_subtree_path(built: tuple[Model, ng.Spec], graph: tf.Graph) -> None:
    _, spec = built
    with pytest.raises(ng.SpecError, match=r"towers.7: no '7' here \(list of 3\)"):
        ng.from_graph(spec, graph, subtree="towers.7")


def test_copy_and_pickle_state_fill_lazy_objects(
    built: tuple[Model, ng.Spec], graph: tf.Graph
) -> None:
    _, spec = built
    again = ng.from_graph(spec, graph)
    dup = copy.copy(again.towers[0])
    assert len(dup.layers) == 2
    state = again.towers[1].__getstate__()
    assert "_nestgraph_pending" not in state and "layers" in state
    assert pickle.dumps(ng.from_graph(spec, graph).lr) == pickle.dumps(0.01)


def test_sparse_tensor_round_trip(graph: tf.Graph) -> None:
    root = Counted()
    root.sp = tf.SparseTensor(
        tf1.placeholder(tf.int64, [None, 2], name="i"),
        tf1.placeholder(tf.float32, [None], name="v"),
        tf1.placeholder(tf.int64, [2], name="s"),
    )
    again = ng.from_graph(ng.to_graph(root), graph)
    assert isinstance(again.sp, tf.SparseTensor)
    assert again.sp.values is root.sp.values


# --------------------------------------------------------------------------- property test


class Holder(ng.GraphConvertible):
    pass


def _pool() -> tuple[tf.Graph, list[Any]]:
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [2], name="x")
        v = tf1.get_variable("v", [2])
        y = tf.add(x, v, name="y")
        elements = [x, v, y, y.op, tf1.get_variable("scope/u", [1])]
    return g, elements


GRAPH, ELEMENTS = _pool()

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
)
_field_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def _structures() -> st.SearchStrategy[Any]:
    leaves = _scalars | st.sampled_from(ELEMENTS)

    def branches(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        def make_obj(fields: dict[str, Any]) -> Holder:
            h = Holder()
            h.__dict__.update(fields)
            return h

        return st.one_of(
            st.lists(kids, max_size=3),
            st.tuples(kids, kids),
            st.dictionaries(st.text(max_size=4), kids, max_size=3),
            st.dictionaries(_field_names, kids, max_size=3).map(make_obj),
            st.builds(Pair, kids, kids),
        )

    return st.recursive(leaves, branches, max_leaves=15)


def _share(value: Any, data: st.DataObject) -> Any:
    """Add shared references: some list/object slots point back at earlier branches."""
    branches: list[Any] = []

    def visit(v: Any) -> None:
        if isinstance(v, (list, Holder)):
            branches.append(v)
            for child in list(v) if isinstance(v, list) else list(vars(v).values()):
                visit(child)
        elif isinstance(v, (tuple, dict)):
            for child in v.values() if isinstance(v, dict) else v:
                visit(child)

    visit(value)
    for holder in [b for b in branches if isinstance(b, Holder)]:
        if data.draw(st.booleans()):
            holder.link = data.draw(st.sampled_from(branches))
    return value


def _same(original: Any, rebuilt: Any, pairs: dict[int, int]) -> None:
    """Structure, values, graph names, kinds and identities all match."""
    if isinstance(original, (list, tuple, dict, Holder)):
        if id(original) in pairs and not (isinstance(original, tuple) and not original):
            assert pairs[id(original)] == id(rebuilt), "identity not kept"
            return
        pairs[id(original)] = id(rebuilt)
    assert type(rebuilt) is type(original)
    if isinstance(original, (list, tuple)):
        assert len(original) == len(rebuilt)
        for a, b in zip(original, rebuilt, strict=True):
            _same(a, b, pairs)
    elif isinstance(original, dict):
        assert list(original) == list(rebuilt)
        for k in original:
            _same(original[k], rebuilt[k], pairs)
    elif isinstance(original, Holder):
        ng.binding.materialize(rebuilt)
        assert list(vars(original)) == [k for k in vars(rebuilt)]
        for k, v in vars(original).items():
            _same(v, getattr(rebuilt, k), pairs)
    elif isinstance(original, (tf.Tensor, tf.Operation, tf.Variable)):
        assert rebuilt is original
    else:
        assert rebuilt == original or (rebuilt != rebuilt and original != original)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_field_names, _structures(), max_size=4), st.data())
def test_random_models_survive_walk_yaml_rebind(
    fields: dict[str, Any], data: st.DataObject
) -> None:
    root = Holder()
    root.__dict__.update(fields)
    _share(root, data)
    spec = ng.to_graph(root)
    rebuilt = ng.from_graph(ng.Spec.from_yaml(spec.to_yaml()), GRAPH)
    _same(root, rebuilt, {})


class Unknown:  # never registered
    def __init__(self, t: tf.Tensor) -> None:
        self.t = t


def test_names_classes_and_shapes_are_reported_in_one_error(graph: tf.Graph) -> None:
    t = tf1.placeholder(tf.float32, [], name="t")
    root = Counted()
    root.a = Unknown(t)
    root.b = t
    root.c = Pair(1, t)
    data = ng.to_graph(root).to_dict()
    data["fields"]["a"] = {"class": "test_binding:Unknown", "fields": {"t": "tensor t:0"}}
    data["fields"]["b"] = "tensor not_there:0"
    data["fields"]["c"]["namedtuple"] = "test_binding:Counted"  # a class that is not a tuple
    spec = ng.Spec.from_dict(data)
    with pytest.raises(ng.BindingAndClassError) as info:
        ng.from_graph(spec, graph)
    assert [p.path for p in info.value.problems] == ["b", "a", "c"]
    assert "no tensor 'not_there:0'" in info.value.problems[0].message
    assert "pass allow=['test_binding.Unknown']" in info.value.problems[1].message
    assert "test_binding:Counted is not a namedtuple class" in info.value.problems[2].message
    assert isinstance(info.value, ng.BindingError) and isinstance(
        info.value, ng.ClassNotAllowedError
    )

    report = ng.check(spec, graph, allow=())
    assert [(f.path, f.status) for f in report.findings if not f.ok] == [
        ("b", "missing"),
        ("a", "refused"),
        ("c", "wrong_shape"),
    ]
    assert [f.path for f in ng.check(spec, graph).findings if not f.ok] == ["b"]  # names only


def test_sparse_binding_over_tensors_of_the_wrong_dtype(graph: tf.Graph) -> None:
    f = tf1.placeholder(tf.float32, [None, 2], name="f")
    v = tf1.placeholder(tf.float32, [None], name="v")
    s = tf1.placeholder(tf.int64, [2], name="s")
    text = (
        "nestgraph: 1\nclass: test_binding:Counted\nfields:\n"
        f"  sp: sparse {f.name} {v.name} {s.name}\n"
    )
    with pytest.raises(
        ng.BindingError, match=r"sp \(line 4\): sparse binding: indices 'f:0' is float32, not int64"
    ):
        ng.from_graph(ng.Spec.from_yaml(text), graph)


def test_generic_namedtuple_classes_are_bounded(graph: tf.Graph) -> None:
    from nestgraph import _builder

    for i in range(_builder._MAX_GENERIC_TUPLES + 10):
        _builder._generic_namedtuple(f"pkg:T{i}", ("a",))
    assert len(_builder._generic_tuples) == _builder._MAX_GENERIC_TUPLES
