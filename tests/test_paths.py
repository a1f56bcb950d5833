"""Dotted paths: one spelling per key, parse(format(p)) == p."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nestgraph as ng
from nestgraph.paths import format_path, join, list_index, parse_path


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


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


@given(st.lists(st.one_of(_TEXT, st.integers(0, 99)), max_size=6))
def test_round_trip(keys: list[str | int]) -> None:
    assert parse_path(format_path(tuple(keys))) == tuple(str(k) for k in keys)


@given(st.lists(_TEXT, min_size=1, max_size=4), st.data())
def test_a_key_has_one_bracketed_spelling(keys: list[str], data: st.DataObject) -> None:
    # Writing one key as a bracketed JSON string some other way than format_path does
    # (escaped, or bracketing a plain word) is refused, never read as the same path.
    i = data.draw(st.integers(0, len(keys) - 1))
    other = json.dumps(keys[i], ensure_ascii=data.draw(st.booleans()))
    text = format_path(tuple(keys[:i])) + f"[{other}]"
    if f"[{other}]" == format_path((keys[i],)):
        assert parse_path(text) == tuple(keys[: i + 1])
    else:
        with pytest.raises(ng.SpecError, match="malformed path"):
            parse_path(text)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ('w["b"]', r'the key "b" is spelled \.b in a path'),
        ('["w"]', r'the key "w" is spelled w in a path'),
        ('layers["0"]', r'the key "0" is spelled \.0'),
        ('a["\\u00e9"]', r'spelled \["é"\]'),
        ('a["\\/"]', r'spelled \["/"\]'),
        ('a["\\x"]', "not a valid JSON string"),
        ('a["\\ud800"]', "lone surrogate"),
        ('a["\ud800"]', "lone surrogate"),
        ('a["tab\there"]', "not a valid JSON string"),
        ("layers[01]", r"\[01\] is not a list position"),
        ("layers[\u0663]", "is not a list position"),
        ("layers[+1]", "is not a list position"),
        ("layers[]", "is not a list position"),
    ],
)
def test_second_spellings_and_bad_keys_are_refused(bad: str, why: str) -> None:
    with pytest.raises(ng.SpecError, match=f"malformed path .* at character \\d+: .*{why}"):
        parse_path(bad)


def test_escapes_json_needs_are_the_spelling() -> None:
    assert parse_path('a["q\\"t"]["new\\nline"]') == ("a", 'q"t', "new\nline")
    assert format_path(("a", 'q"t', "new\nline")) == 'a["q\\"t"]["new\\nline"]'


def test_list_index_is_canonical_ascii_only() -> None:
    assert [list_index(k) for k in ("0", "7", "120")] == [0, 7, 120]
    assert [list_index(k) for k in ("01", "00", "-1", "+1", "1_0", "\u0663", "\uff11", "")] == [
        None
    ] * 8


@pytest.mark.parametrize("key", ["01", "\u0661", "\uff11"])  # 1 in Arabic-Indic, full width
def test_a_position_has_one_spelling_in_a_spec(key: str) -> None:
    spec = ng.Spec.from_yaml("nestgraph: 1\nroot: [str a, str b]\n")
    assert spec.resolve(("1",))[0] == (1,)
    with pytest.raises(ng.SpecError, match="no"):
        spec.resolve((key,))
