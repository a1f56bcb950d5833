"""Spec: dict/YAML round trips, schema errors with lines, subtree, rescope, flatten."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nestgraph as ng
from nestgraph.nodes import (
    DictNode,
    Leaf,
    ListNode,
    NamedTupleNode,
    ObjectNode,
    Ref,
    Skipped,
    SpecNode,
    TupleNode,
    Value,
)

MODEL_YAML = """\
nestgraph: 1
class: pkg.models:Model
fields:
  x: tensor inputs/x:0
  lr: 0.001
  name: str tensor not/a/binding:0
  encoder:
    class: pkg.models:Encoder
    fields:
      layers:
      - class: pkg.models:Dense
        fields:
          w: variable encoder/layer_0/w:0
          out: tensor encoder/layer_0/Relu:0
      - class: pkg.models:Dense
        fields:
          w: variable encoder/layer_1/w:0
          out: tensor encoder/layer_1/Relu:0
      owner: ref .
  best: ref encoder.layers.1
  heads:
    dict:
      "a.b":
        class: pkg.models:Dense
        fields: {w: variable head/w:0, out: tensor head/Relu:0}
  pair: {namedtuple: "pkg.models:Pair", fields: {a: 1, b: tensor inputs/x:0}}
  shape: {tuple: [2, 3]}
  sp: sparse s/i:0 s/v:0 s/s:0
  train: op train/Adam
  sess: skipped tensorflow.python.client.session:Session is not a graph element
"""


@pytest.fixture
def spec() -> ng.Spec:
    return ng.Spec.from_yaml(MODEL_YAML, source="model.yaml")


def test_yaml_round_trip_is_exact(spec: ng.Spec) -> None:
    again = ng.Spec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.to_yaml() == spec.to_yaml()
    assert spec.to_yaml().startswith("nestgraph: 1\nclass: pkg.models:Model\nfields:\n  x: ")


def test_dict_form_is_json_compatible(spec: ng.Spec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert ng.Spec.from_dict(data) == spec


def test_strings_are_never_bindings(spec: ng.Spec) -> None:
    root = spec.root
    assert isinstance(root, ObjectNode)
    assert root.fields["name"] == Value("tensor not/a/binding:0")
    assert "name" not in spec.flatten()


def test_flatten_and_bindings(spec: ng.Spec) -> None:
    flat = spec.flatten()
    assert flat["encoder.layers.0.w"] == "encoder/layer_0/w:0"
    assert flat['heads["a.b"].out'] == "head/Relu:0"
    assert flat["sp.values"] == "s/v:0"
    assert flat["train"] == "train/Adam"
    kinds = {b.path: b.kind for b in spec.bindings()}
    assert kinds["encoder.layers.0.w"] == "variable"
    assert kinds["train"] == "op"
    assert kinds["sp.indices"] == "tensor"
    assert list(flat)[:3] == ["x", "encoder.layers.0.w", "encoder.layers.0.out"]


def test_skipped(spec: ng.Spec) -> None:
    assert spec.skipped == {
        "sess": "tensorflow.python.client.session:Session is not a graph element"
    }


def test_resolve_follows_refs(spec: ng.Spec) -> None:
    path, node = spec.resolve("best.w")
    assert path == ("encoder", "layers", 1, "w")
    assert node == Leaf("variable", ("encoder/layer_1/w:0",))
    path, _ = spec.resolve("encoder.owner.encoder.layers[0]")
    assert path == ("encoder", "layers", 0)


def test_resolve_names_missing_key(spec: ng.Spec) -> None:
    with pytest.raises(ng.SpecError, match=r"encoder.layers.7: no '7' here \(list of 2\)"):
        spec.resolve("encoder.layers.7")


def test_subtree_reroots_and_inlines_outside_refs(spec: ng.Spec) -> None:
    sub = spec.subtree("encoder")
    assert sub.flatten()["layers.0.w"] == "encoder/layer_0/w:0"
    root = sub.root
    assert isinstance(root, ObjectNode)
    owner = root.fields["owner"]
    # The model that owns the encoder is copied in; its ref back to the encoder is the new root.
    assert isinstance(owner, ObjectNode)
    assert owner.fields["encoder"] == Ref(())
    assert owner.fields["best"] == Ref(("layers", "1"))
    assert ng.Spec.from_yaml(sub.to_yaml()) == sub


def test_subtree_of_leaf_object(spec: ng.Spec) -> None:
    sub = spec.subtree('heads["a.b"]')
    assert sub.flatten() == {"w": "head/w:0", "out": "head/Relu:0"}
    assert spec.subtree("best") == spec.subtree("encoder.layers.1")


def test_rescope_whole_and_subtree(spec: ng.Spec) -> None:
    moved = spec.rescope("encoder/", "tower_1/encoder/")
    assert moved.flatten()["encoder.layers.1.out"] == "tower_1/encoder/layer_1/Relu:0"
    assert moved.flatten()["x"] == "inputs/x:0"
    part = spec.rescope("encoder/", "enc/", subtree="encoder.layers.0")
    assert part.flatten()["encoder.layers.0.w"] == "enc/layer_0/w:0"
    assert part.flatten()["encoder.layers.1.w"] == "encoder/layer_1/w:0"
    assert spec.flatten()["encoder.layers.0.w"] == "encoder/layer_0/w:0"  # unchanged


def test_rescope_without_match_is_an_error(spec: ng.Spec) -> None:
    with pytest.raises(ng.SpecError, match="no name under 'encoder' starts with 'tower_9/'"):
        spec.rescope("tower_9/", "x/", subtree="encoder")


def test_map_bindings(spec: ng.Spec) -> None:
    frozen = spec.map_bindings(
        lambda kind, name: ("tensor", name) if kind == "variable" else (kind, name)
    )
    assert {b.kind for b in frozen.bindings()} == {"tensor", "op"}


def test_from_file_object_uses_its_name(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MODEL_YAML.replace("lr: 0.001", "lr: [unclosed"))
    with open(path) as f, pytest.raises(ng.SpecError, match=r"m\.yaml, line \d+: invalid YAML"):
        ng.Spec.from_yaml(f)
    assert ng.Spec.from_yaml(io.BytesIO(MODEL_YAML.encode())).flatten()["x"] == "inputs/x:0"


def test_every_schema_problem_is_reported_with_line() -> None:
    text = """\
nestgraph: 1
class: pkg:Model
fields:
  a: tensor x
  b: plain words
  c: {class: pkg:C, feilds: {}}
  d: op y:0
  e: ref nowhere
  f: sparse a:0 b:0
  g: {dict: {1: tensor z:0}}
  h: {}
"""
    with pytest.raises(ng.SpecError) as info:
        ng.Spec.from_yaml(text, source="bad.yaml")
    message = str(info.value)
    expected = [
        "a (line 4): bad tensor name 'x': a tensor name ends in ':N'",
        "b (line 5): 'plain words' does not start with a kind",
        "a plain string is written 'str plain words'",
        "c (line 6): unexpected key(s) 'feilds' beside 'class'",
        "d (line 7): bad op name 'y:0': an op name has no ':N' "
        "(did you mean 'op y' or 'tensor y:0'?)",
        "f (line 9): 'sparse' takes three tensor names",
        "g (line 10): key 1 must be a string",
        "h (line 11): a mapping must have exactly one of 'class', 'namedtuple', 'dict' or 'tuple'",
    ]
    for line in expected:
        assert line in message, (line, message)
    assert message.startswith("bad.yaml: 8 problems:")
    assert info.value.line == 4


def test_ref_problems_are_reported() -> None:
    text = """\
nestgraph: 1
class: pkg:Model
fields:
  a: {class: pkg:A, fields: {v: 1}}
  b: ref nowhere
  c: ref a.v
  d: ref e
  e: ref a
  f: ref a.v.deeper
"""
    with pytest.raises(ng.SpecError) as info:
        ng.Spec.from_yaml(text)
    message = str(info.value)
    assert "b (line 5): ref 'nowhere': no 'nowhere' here (object pkg:Model)" in message
    assert "c (line 6): ref 'a.v' points at a value; refs name objects and containers" in message
    assert "d (line 7): ref points at another ref ('e')" in message
    assert "f (line 9): ref 'a.v.deeper'" in message


def test_ref_loop_is_an_error_not_a_hang() -> None:
    text = "nestgraph: 1\nclass: p:M\nfields:\n  a: ref b.x\n  b: ref a.y\n"
    with pytest.raises(ng.SpecError, match="refs form a loop"):
        ng.Spec.from_yaml(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- 1\n", "a spec is a mapping starting with 'nestgraph: 1', not list"),
        ("class: p:M\n", "not a nestgraph spec: the key 'nestgraph: 1' is missing"),
        ("nestgraph: 2\nclass: p:M\n", "line 1: spec format version 2 is newer"),
        ("nestgraph: true\nclass: p:M\n", "'nestgraph' must be the format version 1"),
        ("nestgraph: 1\n", "a spec needs 'class' and 'fields'"),
        ("nestgraph: 1\nclass: p:M\nextra: 1\n", "unexpected top-level key"),
        ("nestgraph: 1\nclass: not-a-path\n", "'class' must be a class path"),
        ("nestgraph: 1\nroot: [1]\nclass: p:M\n", "either 'root' or 'class'"),
    ],
)
def test_top_level_problems(text: str, match: str) -> None:
    with pytest.raises(ng.SpecError, match=match):
        ng.Spec.from_yaml(text)


def test_non_object_root_round_trips() -> None:
    spec = ng.Spec.from_yaml("nestgraph: 1\nroot: [tensor a:0, {tuple: [1]}]\n")
    assert spec.root == ListNode([Leaf("tensor", ("a:0",)), TupleNode([Value(1)])])
    assert ng.Spec.from_yaml(spec.to_yaml()) == spec


def test_python_tags_are_refused_in_specs() -> None:
    with pytest.raises(ng.SpecError, match="line 3: the tag .*python/object"):
        ng.Spec.from_yaml("nestgraph: 1\nclass: p:M\nfields: !!python/object:os.Foo {}\n")


# --------------------------------------------------------------------------- properties

_names = st.from_regex(r"[a-z][a-z0-9_]{0,5}(/[a-z][a-z0-9_]{0,5}){0,2}", fullmatch=True)
_keys = st.text(max_size=6)
_leaves: st.SearchStrategy[SpecNode] = st.one_of(
    st.builds(Value, st.none() | st.booleans() | st.integers() | st.text(max_size=10)),
    st.builds(Value, st.floats(allow_nan=False)),
    st.builds(
        lambda k, n: Leaf(k, (n if k == "op" else n + ":0",)),
        st.sampled_from(["tensor", "op", "variable"]),
        _names,
    ),
    st.builds(
        lambda a, b, c: Leaf("sparse", (a + ":0", b + ":1", c + ":2")), _names, _names, _names
    ),
    st.builds(Skipped, st.text(max_size=10)),
)
_class_paths = st.from_regex(r"[a-z]{1,4}(\.[a-z]{1,4})?:[A-Z][a-z]{0,4}", fullmatch=True)


def _branches(children: st.SearchStrategy[SpecNode]) -> st.SearchStrategy[SpecNode]:
    fields = st.dictionaries(_keys, children, max_size=4)
    return st.one_of(
        st.builds(ObjectNode, _class_paths, fields),
        st.builds(NamedTupleNode, _class_paths, fields),
        st.builds(ListNode, st.lists(children, max_size=4)),
        st.builds(TupleNode, st.lists(children, max_size=4)),
        st.builds(DictNode, fields),
    )


_trees = st.recursive(_leaves, _branches, max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(st.builds(ObjectNode, _class_paths, st.dictionaries(_keys, _trees, max_size=5)))
def test_random_trees_round_trip_through_yaml_and_json(root: ObjectNode) -> None:
    spec = ng.Spec(root)
    assert ng.Spec.from_yaml(spec.to_yaml()) == spec
    assert ng.Spec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.flatten() == ng.Spec.from_yaml(spec.to_yaml()).flatten()


def test_subtree_keeps_the_lines_of_its_nodes(spec: ng.Spec) -> None:
    assert spec.line_of(("heads", "a.b", "w")) == 25
    head = spec.subtree('heads["a.b"]')
    assert head.source == "model.yaml"
    assert head.line_of(()) == 23
    assert head.line_of(("w",)) == 25
    assert head.line_of(("out",)) == 25


def test_resolve_quotes_an_awkward_first_key(spec: ng.Spec) -> None:
    with pytest.raises(ng.SpecError, match=r'^\["a.b"\]: no \'a.b\' here'):
        spec.resolve('["a.b"]')
