"""``Spec.from_flat``: the seed's flat ``{field: graph name}`` dicts become versioned specs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import nestgraph as ng

tf1 = tf.compat.v1


class Seed(ng.GraphConvertible):
    """The seed article's one-class model, with its flat to_graph dict."""

    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None], name="x")
        self.expanded = tf.expand_dims(self.x, 1)
        self.w = tf1.get_variable("w", [1, 2])
        self.y = tf.matmul(self.expanded, self.w)
        self.train_step = tf1.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(self.y))

    def seed_dict(self) -> dict[str, str]:
        return {
            "x": self.x.name,
            "expanded": self.expanded.name,
            "w": self.w.name,
            "y": self.y.name,
            "train_step": self.train_step.name,
        }


@pytest.fixture
def seed(graph: Any) -> Seed:
    return Seed()


def test_kinds_come_from_the_graph(seed: Seed, graph: Any) -> None:
    flat = json.loads(json.dumps(seed.seed_dict()))  # as the seed's users hold it
    spec = ng.Spec.from_flat(flat, graph)
    kinds = {record.path: record.kind for record in spec.bindings()}
    assert kinds == {
        "x": "tensor",
        "expanded": "tensor",
        "w": "variable",
        "y": "tensor",
        "train_step": "op",
    }
    assert spec.flatten() == flat
    # A dict root by default, so from_graph gives a plain dict of the graph's objects.
    rebuilt = ng.from_graph(spec, graph)
    assert rebuilt["expanded"] is seed.expanded
    assert rebuilt["w"] is seed.w
    assert rebuilt["train_step"] is seed.train_step
    # The YAML is versioned and round-trips.
    assert spec.to_yaml().startswith("nestgraph: 1\n")
    assert ng.Spec.from_yaml(spec.to_yaml()) == spec


def test_with_a_class_the_root_is_that_object(seed: Seed, graph: Any) -> None:
    spec = ng.Spec.from_flat(seed.seed_dict(), graph, cls=Seed)
    assert spec.to_dict()["class"] == f"{Seed.__module__}:Seed"
    rebuilt = ng.from_graph(spec, graph)
    assert isinstance(rebuilt, Seed) and rebuilt.w is seed.w
    by_path = ng.Spec.from_flat(seed.seed_dict(), graph, cls="pkg.models:Seed")
    assert by_path.to_dict()["class"] == "pkg.models:Seed"


def test_dotted_keys_stay_flat_fields(seed: Seed, graph: Any) -> None:
    spec = ng.Spec.from_flat({"enc.w": "w:0", "enc.x": "x:0"}, graph)
    assert spec.flatten() == {'["enc.w"]': "w:0", '["enc.x"]': "x:0"}
    assert spec.to_dict()["root"] == {"dict": {"enc.w": "variable w:0", "enc.x": "tensor x:0"}}


def test_every_missing_name_is_reported_with_the_closest(seed: Seed, graph: Any) -> None:
    flat = {"x": "x:0", "w": "W:0", "y": "MatMul:3", "step": "Adamm", "gone": "nothing/here:0"}
    with pytest.raises(ng.BindingError) as caught:
        ng.Spec.from_flat(flat, graph)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {"w", "y", "step", "gone"}
    assert problems["w"].startswith("no tensor 'W:0' in the graph (closest: 'w:0'")
    assert problems["y"].startswith("op 'MatMul' has 1 output(s), so no 'MatMul:3' (closest: ")
    assert "'MatMul:0'" in problems["y"]
    assert problems["step"].startswith("no op 'Adamm' in the graph (closest: 'Adam'")
    assert problems["gone"] == "no tensor 'nothing/here:0' in the graph"
    assert str(caught.value).startswith("4 problems:")


def test_malformed_mappings_are_spec_errors(graph: Any) -> None:
    with pytest.raises(ng.SpecError, match=r"a flat spec is a mapping .* not list"):
        ng.Spec.from_flat(["x:0"], graph)  # type: ignore[arg-type]
    with pytest.raises(ng.SpecError, match=r"2 problems:\n  a: expected a graph name .* int 3"):
        ng.Spec.from_flat({"a": 3, "b": None}, graph)  # type: ignore[dict-item]
    with pytest.raises(ng.SpecError, match="cls must be a class or a class path"):
        ng.Spec.from_flat({}, graph, cls="no colon")
    with pytest.raises(ng.SpecError, match="cls must be a class or a class path"):
        ng.Spec.from_flat({}, graph, cls=3)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=6))
def test_hostile_dicts_give_a_spec_or_a_nestgraph_error(flat: dict[str, str]) -> None:
    with tf.Graph().as_default() as graph:
        tf1.placeholder(tf.float32, name="x")
        try:
            spec = ng.Spec.from_flat(flat, graph)
        except ng.NestgraphError as exc:
            # Every problem is listed, each under the dotted path of its own key.
            keys = {
                ng.Spec.from_dict({"nestgraph": 1, "root": {"dict": {k: "op x"}}})
                .bindings()
                .__next__()
                .path
                for k in flat
            }
            assert exc.problems and {p.path for p in exc.problems} <= keys
        else:
            assert set(spec.flatten().values()) <= {"x", "x:0"}


def test_loading_a_flat_dict_as_a_spec_points_at_the_migration(tmp_path: Any) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"x": "ExpandDims:0", "train_step": "Adam"}))
    with pytest.raises(
        ng.SpecError, match=r"ng\.Spec\.from_flat\(mapping, graph\) or 'nestgraph upgrade"
    ):
        ng.load_spec(old)
