"""The YAML layer: safe, bounded, line-aware; the emitter writes no aliases."""

from __future__ import annotations

import enum
import re
import time

import pytest
import yaml

import nestgraph as ng
from nestgraph._yamlio import dump_yaml, load_json, load_yaml, scalar_problem


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
    with pytest.raises(ng.SpecError, match="m.yaml, line 1: not readable as YAML text"):
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


def test_aliases_are_bounded_by_characters_too() -> None:
    # 1 MB of text repeated through 20 aliases would be 20 MB; few nodes, many bytes.
    text = "a: &a '" + "x" * 1_000_000 + "'\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    start = time.perf_counter()
    with pytest.raises(ng.SpecError, match=r"line 2: aliases expand to more than \d+ characters"):
        load_yaml(text)
    assert time.perf_counter() - start < 0.5
    data, _ = load_yaml(text, max_alias_chars=30_000_000)
    assert len(data["b"]) == 20 and data["b"][0] == data["a"]


@pytest.mark.parametrize("text", ["a: 1:30\n", "a: -1:30:00\n", "a: 1:30.5\n", "a: 190:20:30\n"])
def test_sexagesimal_numbers_are_refused(text: str) -> None:
    with pytest.raises(ng.SpecError, match=r"line 1: sexagesimal number '.*' is not allowed"):
        load_yaml(text)


def test_a_long_sexagesimal_number_is_refused_at_once() -> None:
    start = time.perf_counter()
    with pytest.raises(ng.SpecError, match=r"sexagesimal number .*\(\d+ characters\)"):
        load_yaml("a: " + ":".join(["59"] * 200_000) + "\n")
    assert time.perf_counter() - start < 0.5


def test_quoted_sexagesimal_is_text() -> None:
    assert load_yaml("a: '1:30'\n")[0] == {"a": "1:30"}


@pytest.mark.parametrize(
    "literal", ["0x" + "f" * 3600, "0b" + "1" * 20_000, "0" + "7" * 5000, "1" + "0" * 4300]
)
def test_integers_beyond_the_digit_limit_are_refused(literal: str) -> None:
    with pytest.raises(ng.SpecError, match=r"line 2: integer of more than 4300 decimal digits"):
        load_yaml(f"ok: 1\na: {literal}\n")


def test_huge_hex_literal_is_refused_unread() -> None:
    start = time.perf_counter()
    with pytest.raises(ng.SpecError, match="integer of more than"):
        load_yaml("a: 0x" + "f" * 10_000_000 + "\n")
    assert time.perf_counter() - start < 0.5


def test_integers_within_the_limit_are_read_and_written_back() -> None:
    value = int("f" * 3000, 16)  # about 3613 decimal digits
    data, _ = load_yaml(f"a: 0x{'f' * 3000}\nb: {'9' * 4300}\nc: -0b101\nd: 1_000\n")
    assert data == {"a": value, "b": int("9" * 4300), "c": -5, "d": 1000}
    assert load_yaml(dump_yaml(data))[0] == data


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: \ud800\n", 1), ("a: 1\nb: [x, 'y\udfff']\n", 2), ("\udc00: 1\n", 1)],
)
def test_lone_surrogates_in_text_are_refused_with_line(text: str, line: int) -> None:
    with pytest.raises(ng.SpecError, match=rf"m.yaml, line {line}: .*lone surrogate \(U\+D"):
        load_yaml(text, source="m.yaml")


@pytest.mark.parametrize("text", ['a: "\\ud800"\n', '"\\udc00x": 1\n', b"a: \xed\xa0\x80\n"])
def test_surrogate_escapes_and_encoded_surrogates_are_refused(text: str | bytes) -> None:
    with pytest.raises(ng.SpecError, match="line 1"):
        load_yaml(text)


def test_nan_and_infinity_are_floats() -> None:
    data, _ = load_yaml("a: .nan\nb: -.inf\n")
    assert data["a"] != data["a"] and data["b"] == float("-inf")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("x\ud800", r"lone surrogate \(U\+D800\) at character 2"),
        (10**4300, "more than 4300 decimal digits"),
        (-(10**4300), "more than 4300 decimal digits"),
        (enum.IntEnum("E", "A").A, "E is not plain data"),
        (type("S", (str,), {})("x"), "S is not plain data"),
        ((1, 2), "tuple is not plain data"),
    ],
    ids=["surrogate", "huge", "huge-negative", "int-enum", "str-subclass", "tuple"],
)
def test_scalar_problem_names_what_is_wrong(value: object, match: str) -> None:
    problem = scalar_problem(value)
    assert problem is not None and re.search(match, problem)


@pytest.mark.parametrize(
    "value", ["tensor x:0", "", 10**4300 - 1, -5, 1.5, True, None], ids=lambda v: type(v).__name__
)
def test_scalar_problem_passes_plain_scalars(value: object) -> None:
    assert scalar_problem(value) is None


# ---------------------------------------------------------------------------- JSON


def test_json_plain_data() -> None:
    assert load_json('{"a": [1, 2.5, "x", null, true], "b": {}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {},
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"a": 1, "a": 2}', "m.json: duplicate key 'a' in a JSON object"),
        ('{"x": {"k": 1, "k": 1}}', "duplicate key 'k'"),
        ("[" + "1" * 4301 + "]", "integer of more than 4300 decimal digits"),
        ('["ok", "\\ud800"]', r"lone surrogate \(U\+D800\)"),
        ('{"\\udfff": 1}', r"lone surrogate \(U\+DFFF\)"),
        (b'["\xed\xa0\x80"]', "lone surrogate"),
        ('{"a": 1,}', r"m.json, line 1: invalid JSON"),
        ('"\\x"', r"m.json, line 1: invalid JSON: Invalid \\escape"),
        (b"\xff\xfe\x00", "m.json"),
        ("", "invalid JSON"),
        (3, "expected JSON text or bytes, got int"),
    ],
)
def test_json_refusals(text: str | bytes, match: str) -> None:
    with pytest.raises(ng.SpecError, match=match):
        load_json(text, source="m.json")


@pytest.mark.parametrize("depth", [209, 2_000, 1_000_000])
def test_deep_json_is_refused_with_line_without_recursion_error(depth: int) -> None:
    text = '{"a":\n' + "[" * depth + "]" * depth + "}"
    with pytest.raises(ng.SpecError, match=r"m.json, line 2: nested deeper than 208 levels"):
        load_json(text, source="m.json")


def test_json_at_the_depth_limit_is_read() -> None:
    assert load_json("[" * 208 + "]" * 208) is not None


def test_json_huge_integer_is_refused_unread() -> None:
    start = time.perf_counter()
    with pytest.raises(ng.SpecError, match="integer of more than"):
        load_json("[" + "7" * 10_000_000 + "]")
    assert time.perf_counter() - start < 0.5


def test_json_nan_and_infinity_are_floats_like_yaml() -> None:
    data = load_json("[NaN, Infinity, -Infinity, 1e999]")
    assert data[0] != data[0] and data[1:] == [float("inf"), float("-inf"), float("inf")]
