"""``Spec.diff`` / ``SpecDiff``: categories, order, ``bool`` and ``str``, symmetry."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nestgraph as ng


def spec(fields: dict[str, Any], cls: str = "pkg.models:Model") -> ng.Spec:
    return ng.Spec.from_dict({"nestgraph": 1, "class": cls, "fields": fields})


OLD = {
    "x": "tensor inputs/x:0",
    "layers": [{"class": "pkg:Dense", "fields": {"w": "variable l0/w:0"}}],
    "best": "ref layers.0",
    "lr": 0.1,
    "train": "op train",
}


def test_equal_specs_have_no_differences() -> None:
    diff = spec(OLD).diff(spec(OLD))
    assert not diff
    assert diff.rows() == [] and diff.counts() == ""
    assert str(diff) == "no differences"


def test_each_category_with_both_sides_recorded() -> None:
    new = dict(OLD, x="variable inputs/x:0", lr=0.2, best="tensor best:0", keep=True)
    del new["train"]
    new["layers"] = [{"class": "pkg:Wide", "fields": {"w": "variable l0/w_1:0"}}]
    diff = spec(OLD).diff(spec(new))
    assert bool(diff)
    assert [e.path for e in diff.removed] == ["train"]
    assert [e.path for e in diff.added] == ["keep"]
    assert [(e.path, e.text) for e in diff.rebound] == [
        ("x", "tensor inputs/x:0 -> variable inputs/x:0"),
        ("layers.0.w", "variable l0/w:0 -> variable l0/w_1:0"),
    ]
    assert diff.reclassed[0][:2] == ("layers.0", "pkg:Dense -> pkg:Wide")
    assert diff.category("class") == diff.reclassed
    assert [(e.path, e.text) for e in diff.changed] == [
        ("best", "ref layers.0 -> tensor best:0"),
        ("lr", "0.1 -> 0.2"),
    ]
    assert diff.removed[0].old == ("op", "train") and diff.removed[0].new is None
    assert diff.added[0].new == ("value", "true") and diff.added[0].old is None
    assert diff.counts() == "1 removed, 1 added, 2 rebound, 1 class, 2 changed"
    lines = str(diff).splitlines()
    assert lines[0] == "removed  train       op train"
    assert [line.split()[0] for line in lines] == [
        "removed",
        "added",
        "rebound",
        "rebound",
        "class",
        "changed",
        "changed",
    ]


def test_a_root_class_change_is_named_root() -> None:
    diff = spec({}).diff(spec({}, cls="pkg.models:Other"))
    assert diff.reclassed[0].path == "<root>"


def test_unknown_category_and_non_spec() -> None:
    diff = spec(OLD).diff(spec(OLD))
    with pytest.raises(KeyError, match="no diff category 'moved'"):
        diff.category("moved")
    with pytest.raises(TypeError, match="diff takes a Spec, not dict"):
        spec(OLD).diff(OLD)  # type: ignore[arg-type]


# Nested dict-of-values trees: enough to reach every category but "class".
_names = st.sampled_from(["a", "b", "c", "a.b", "x y"])
_leaves = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(["tensor t:0", "tensor u:0", "op t", "variable v:0", "str s"]),
)
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.dictionaries(_names, inner, max_size=3).map(lambda d: {"dict": d}),
        st.lists(inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_names, _trees, max_size=3), st.dictionaries(_names, _trees, max_size=3))
def test_diff_is_symmetric_and_empty_only_for_equal_specs(a: Any, b: Any) -> None:
    old, new = spec(a), spec(b)
    forward, backward = old.diff(new), new.diff(old)
    assert bool(forward) == (old != new)
    assert {e.path for e in forward.removed} == {e.path for e in backward.added}
    assert {e.path for e in forward.rebound} == {e.path for e in backward.rebound}
    assert {e.path for e in forward.changed} == {e.path for e in backward.changed}
    assert not old.diff(spec(a))
