"""Dotted paths: one spelling per key, parse(format(p)) == p."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nestgraph as ng
from nestgraph.paths import format_path, join, parse_path


def test_plain_keys_join_with_dots() -> None:
    assert format_path(("encoder", "layers", 0, "w")) == "encoder.layers.0.w"
    assert format_path(()) == ""


def test_awkward_keys_are_bracket_quoted() -> None:
    assert format_path(("heads", "a.b", "w")) == 'heads["a.b"].w'
    assert format_path(("x y", "[z]", "")) == '["x y"]["[z]"][""]'
    assert format_path(('q"t',)) == '["q\\"t"]'


def test_list_index_synonym_is_accepted() -> None:
    assert parse_path("layers[2].w") == parse_path("layers.2.w") == ("layers", "2", "w")


def test_root_spellings() -> None:
    assert parse_path("") == parse_path(".") == ()


def test_join_matches_format() -> None:
    assert join(join("", "heads"), "a.b") == format_path(("heads", "a.b"))
    assert join("heads", 3) == "heads.3"


@pytest.mark.parametrize("bad", ["a..b", "a.", ".a", 'a["unterminated', "a[x]", "a b", "a]"])
def test_malformed_paths_raise(bad: str) -> None:
    with pytest.raises(ng.SpecError, match="malformed path"):
        parse_path(bad)


def test_non_string_path_raises() -> None:
    with pytest.raises(ng.SpecError, match="must be a string"):
        parse_path(3)  # type: ignore[arg-type]


@given(st.lists(st.one_of(st.text(max_size=8), st.integers(0, 99)), max_size=6))
def test_round_trip(keys: list[str | int]) -> None:
    assert parse_path(format_path(tuple(keys))) == tuple(str(k) for k in keys)
