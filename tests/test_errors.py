"""The error hierarchy (nestgraph.errors): one Problem record, one formatter, paths and files."""

from __future__ import annotations

import pytest

import nestgraph as ng
from nestgraph.errors import Problem, format_problem


def test_problem_text_and_compiler_style_format() -> None:
    problem = Problem("heads.cls.w", "no variable 'w:0' in the graph", 20)
    assert str(problem) == "heads.cls.w (line 20): no variable 'w:0' in the graph"
    assert (
        format_problem(problem, "m.yaml")
        == "m.yaml:20: heads.cls.w: no variable 'w:0' in the graph"
    )
    assert format_problem(Problem("", "bad root")) == "<root>: bad root"
    assert format_problem(Problem(None, "whole file", 3), "m.yaml") == "m.yaml:3: whole file"


def test_one_error_lists_every_problem_and_keeps_the_first_path() -> None:
    err = ng.BindingError(problems=[Problem("a", "one", 1), Problem("b.c", "two")])
    assert err.path == "a"
    assert str(err) == "2 problems:\n  a (line 1): one\n  b.c: two"
    assert err.problems[1] == Problem("b.c", "two")


def test_single_element_errors_show_their_path_first() -> None:
    err = ng.NestgraphError("went wrong", path="towers.0")
    assert str(err) == "towers.0: went wrong" and err.detail == "went wrong"
    assert str(ng.NestgraphError("at the root", path="")) == "<root>: at the root"


def test_one_name_for_the_file() -> None:
    spec_error = ng.SpecError("bad", source="m.yaml", line=3)
    assert spec_error.file == spec_error.source == "m.yaml"
    assert str(spec_error) == "m.yaml, line 3: bad"
    bundle_error = ng.BundleError("truncated", file="m.ng")
    assert bundle_error.file == "m.ng" and str(bundle_error) == "m.ng: truncated"


def test_every_error_derives_from_nestgraph_error() -> None:
    for cls in (
        ng.SpecError,
        ng.BindingError,
        ng.ClassNotAllowedError,
        ng.BundleError,
        ng.WalkError,
        ng.BindingAndClassError,
    ):
        assert issubclass(cls, ng.NestgraphError)
    both = ng.BindingAndClassError(problems=[Problem("x", "refused")], class_path="p:C")
    assert isinstance(both, ng.BindingError) and isinstance(both, ng.ClassNotAllowedError)
    with pytest.raises(ng.ClassNotAllowedError, match="refused"):
        raise both
