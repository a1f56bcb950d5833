"""The YAML layer: safe, bounded, line-aware; the emitter writes no aliases."""

from __future__ import annotations

import time

import pytest
import yaml

import nestgraph as ng
from nestgraph._yamlio import dump_yaml, load_yaml


def test_plain_data_and_lines() -> None:
    data, lines = load_yaml("a: 1\nb:\n  - x\n  - 2.5\nc: {d: null, e: true}\n")
    assert data == {"a": 1, "b": ["x", 2.5], "c": {"d": None, "e": True}}
    assert lines[("a",)] == 1
    assert lines[("b", 1)] == 4
    assert lines[("c", "e")] == 5


def test_quoted_scalars_stay_strings_and_dates_stay_text() -> None:
    data, _ = load_yaml("a: '1'\nb: 2001-12-14\nc: !!str 3\n")
    assert data == {"a": "1", "b": "2001-12-14", "c": "3"}


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo hi']\n",
        "a: !!python/name:os.system\n",
        "a: !custom 1\n",
        "a: !!binary aGk=\n",
        "a: !!set {x: null}\n",
    ],
)
def test_tags_are_refused_with_line(text: str) -> None:
    with pytest.raises(ng.SpecError, match=r"line 1: the tag .* is not allowed"):
        load_yaml(text)


def test_alias_bomb_is_refused_quickly() -> None:
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        levels.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    bomb = "\n".join(levels) + "\n"
    start = time.perf_counter()
    with pytest.raises(ng.SpecError, match="alias bomb"):
        load_yaml(bomb)
    assert time.perf_counter() - start < 0.5


def test_small_aliases_expand() -> None:
    data, _ = load_yaml("a: &x [1, 2]\nb: *x\n")
    assert data == {"a": [1, 2], "b": [1, 2]}
    assert data["a"] is not data["b"]


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ng.SpecError, match="unknown or unfinished anchor"):
        load_yaml("a: &x [1, *x]\n")


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ng.SpecError, match="nested deeper than"):
        load_yaml(deep)


def test_size_limit() -> None:
    with pytest.raises(ng.SpecError, match="byte limit"):
        load_yaml("a: 1\n" * 100, max_bytes=50)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: 1\na: 2\n", r"line 2: duplicate key 'a'"),
        ("<<: {a: 1}\n", "merge keys"),
        ("a: 1\n---\nb: 2\n", "one YAML document"),
        ("? [1, 2]\n: x\n", "mapping key must be a plain scalar"),
        ("a: [1, 2\nb: 3\n", r"line \d+: invalid YAML"),
        ("", "the spec is empty"),
        ("a: 1" + "0" * 5000 + "\n", "line 1"),
    ],
)
def test_malformed_input(text: str, match: str) -> None:
    with pytest.raises(ng.SpecError, match=match):
        load_yaml(text, source="m.yaml")


def test_binary_junk_is_a_spec_error() -> None:
    junk = bytes(range(256)) * 4
    with pytest.raises(ng.SpecError, match="m.yaml: not readable as YAML text"):
        load_yaml(junk, source="m.yaml")


def test_non_text_input() -> None:
    with pytest.raises(ng.SpecError, match="expected YAML text or bytes"):
        load_yaml(123)  # type: ignore[arg-type]


def test_emitter_writes_no_aliases_and_keeps_order() -> None:
    shared = [1, 2]
    text = dump_yaml({"z": shared, "a": shared})
    assert "&" not in text and "*" not in text
    assert text.index("z:") < text.index("a:")
    assert yaml.safe_load(text) == {"z": [1, 2], "a": [1, 2]}


def test_long_values_are_not_folded() -> None:
    long_name = "tensor " + "/".join(["scope"] * 100) + ":0"
    text = dump_yaml({"x": long_name})
    assert text == f"x: {long_name}\n"
