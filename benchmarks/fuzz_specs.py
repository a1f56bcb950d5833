"""Fuzz the spec readers: hostile text and data give ``NestgraphError``s, nothing else.

The properties (shared with ``tests/test_spec_fuzz.py``, which runs them for a
few seconds in the suite):

* spec text: a real spec's YAML (and its JSON), mutated by byte flips,
  deletions, duplications, YAML punctuation and re-indented lines, read with
  ``Spec.from_yaml`` / ``load_json`` + ``Spec.from_dict``;
* dict-form data: random nested dicts, lists and scalars, plain or shaped like
  a spec, read with ``Spec.from_dict``;
* dotted paths and class-policy input: random text for ``parse_path``,
  ``normalize_allow`` and ``resolve_class`` (without ``allow``, so nothing is
  imported).

Each must raise a ``NestgraphError`` subclass or succeed; what it accepts must
survive a round trip (YAML and JSON for specs, ``format_path`` for paths).
Anything else (another exception type, a spec that cannot be written back) is
a failure, reported with hypothesis's smallest example.

Run::

    python benchmarks/fuzz_specs.py --minutes 10      # every property, in turn
    python benchmarks/fuzz_specs.py --minutes 1 --only yaml_text
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nestgraph as ng
from nestgraph._yamlio import load_json
from nestgraph.classpath import normalize_allow, resolve_class
from nestgraph.paths import format_path, parse_path

#: The suite's profile: a fixed, small number of examples per property (about a
#: second each on one core), no example database, no deadline per example.
QUICK = "nestgraph-fuzz-quick"
settings.register_profile(
    QUICK,
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = "nestgraph-fuzz-long"
settings.register_profile(
    LONG,
    max_examples=1_000,  # per round; main() repeats rounds until the time is up
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# A spec using every part of the format, written as a person would (aliases included).
SEED_YAML = """\
nestgraph: 1
class: pkg.models:Model
fields:
  x: tensor inputs/x:0
  lr: 0.001
  steps: 1_000
  flag: true
  nothing: null
  name: str my model
  empty: 'str '
  layers:
  - class: pkg.models:Dense
    fields: {w: variable enc/layer_0/w:0, out: tensor enc/layer_0/Relu:0}
  - class: pkg.models:Dense
    fields:
      w: variable enc/layer_1/w:0
      out: tensor enc/layer_1/Relu:0
  pair: {tuple: [1, -2.5e+3, .inf, "str a:b"]}
  point: {namedtuple: pkg.models:Point, fields: {a: 1, b: &b [op train/Adam, .nan]}}
  again: *b
  heads:
    dict:
      cls: {class: pkg.models:Head, fields: {probs: tensor head/Softmax:0}}
      "a.b": ref layers.1
      "x y": ref heads.cls
  sp: sparse sp/indices:0 sp/values:0 sp/shape:0
  best: ref layers[0]
  root: ref .
  sess: skipped a tf.Session is not data
"""
SEED_JSON = json.dumps(ng.Spec.from_yaml(SEED_YAML).to_dict(), indent=1)

# Pieces that mean something to YAML, JSON or the spec format.
_TOKENS = [
    ":", ": ", "-", "- ", "?", ",", "[", "]", "{", "}", "'", '"', "\\", "#", "&a ", "*a",
    "*b", "!!", "!!python/name:os.system ", "!x ", "<<: ", "---\n", "...\n", "%YAML 1.1\n",
    "\t", "\n", "  ", "|\n", ">-\n", "~", "0x", "0b1", "1:2", ".nan", "1e999", "9" * 50,
    "\\ud800", "\ud800", "\\x00", "\ufeff", "\x85", "\u2028", "tensor ", "ref ", "sparse ", "str ",
    "class: ", "fields: ", "dict: ", "tuple: ", "namedtuple: ", "nestgraph: 2\n", "é", "\x00",
]  # fmt: skip


# Punctuation and indentation edits reach the parser and the validator; byte-level
# damage mostly stops at the reader, so it is drawn less often.
_EDITS = ["insert", "insert", "insert", "indent", "indent", "delete", "duplicate", "flip", "byte"]


@st.composite
def mutated_text(draw: st.DrawFn, seed: str = SEED_YAML) -> bytes:
    """``seed`` as UTF-8 bytes, with a few random edits a fuzzer or a bad editor makes."""
    data = bytearray(seed.encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        # A line first, then a place in it: edits spread over the document, not its start.
        lines = [0, *(i + 1 for i, b in enumerate(data) if b == 0x0A)]
        start = lines[draw(st.integers(0, len(lines) - 1))]
        where = min(len(data), start + draw(st.integers(0, 60)))
        edit = draw(st.sampled_from(_EDITS))
        if edit == "flip" and where < len(data):
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif edit == "delete":
            del data[where : where + draw(st.integers(1, 40))]
        elif edit == "duplicate":
            piece = data[where : where + draw(st.integers(1, 200))]
            data[where:where] = piece * draw(st.integers(1, 5))
        elif edit == "insert":
            data[where:where] = draw(st.sampled_from(_TOKENS)).encode("utf-8", "surrogatepass")
        elif edit == "indent":
            if draw(st.booleans()):
                data[start:start] = b" " * draw(st.integers(1, 4))
            else:
                del data[start : start + draw(st.integers(1, 4))]
        else:
            data[where:where] = bytes([draw(st.integers(0, 255))])
    return bytes(data)


# Scalars a spec can hold. (Unwritable ones, which Spec.from_dict does not refuse yet,
# are tests/test_spec_fuzz.py's xfail cases: see _yamlio.scalar_problem.)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_SPEC_WORDS = [
    "tensor x:0", "tensor x", "op a/b", "op a:0", "variable v:0", "ref .", "ref a.b",
    "ref layers[0]", 'ref ["a', "ref x.01", "str ", "skipped why", "sparse a:0 b:0 c:0",
    "sparse a:0", "pkg.m:C", "class", "fields", "tensor é:0", "ref é",
]  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**4300) + 1, max_value=10**4300 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
    st.sampled_from(_SPEC_WORDS),
)
_KEYS = st.one_of(
    st.sampled_from(
        ["nestgraph", "class", "fields", "root", "dict", "tuple", "namedtuple", "x", "a.b"]
    ),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
    st.integers(-2, 2),
    st.none(),
)


def _object(class_path: Any, fields: Any) -> dict[str, Any]:
    return {"class": class_path, "fields": fields}


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEYS, children, max_size=4),
        st.tuples(children),  # not plain data: must be refused, not crash
        st.builds(_object, _SCALARS, st.dictionaries(_KEYS, children, max_size=3)),
        st.builds(lambda b: {"tuple": b}, st.lists(children, max_size=3)),
        st.builds(lambda b: {"dict": b}, st.dictionaries(_KEYS, children, max_size=3)),
    )  # fmt: skip


_VALUES = st.recursive(_SCALARS, _containers, max_leaves=25)


@st.composite
def spec_like_dicts(draw: st.DrawFn) -> Any:
    """Dict-form data: mostly a spec's top level around random values, sometimes anything."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_VALUES)
    top: dict[Any, Any] = {"nestgraph": draw(st.one_of(st.just(1), _SCALARS))}
    if draw(st.booleans()):
        top["class"] = draw(st.one_of(st.just("pkg.m:Model"), _SCALARS))
        top["fields"] = draw(st.dictionaries(_KEYS, _VALUES, max_size=5))
    else:
        top["root"] = draw(_VALUES)
    if draw(st.integers(0, 4)) == 0:
        top[draw(_KEYS)] = draw(_VALUES)
    return top


def _same(one: ng.Spec, other: ng.Spec) -> bool:
    # Spec equality compares values, and NaN != NaN; JSON text spells NaN one way.
    return json.dumps(one.to_dict()) == json.dumps(other.to_dict())


def _round_trips(spec: ng.Spec) -> None:
    """What a reader accepted, the writers write and the readers read back the same."""
    again = ng.Spec.from_yaml(spec.to_yaml())
    assert _same(again, spec), "YAML round trip changed the spec"
    via_json = ng.Spec.from_dict(load_json(json.dumps(spec.to_dict())))
    assert _same(via_json, spec), "JSON round trip changed the spec"
    for record in spec.bindings():
        # Every path the spec reports is in the one spelling, and leads back to its node.
        keys = parse_path(record.path)
        assert format_path(keys) == record.path
        try:
            spec.resolve(record.path)
            spec.subtree(keys[:-1])
        except ng.NestgraphError:
            pass  # a ref loop or a leaf's parent that is a ref: refused, as it should be
    spec.flatten()


def check_yaml_text(text: bytes) -> None:
    try:
        spec = ng.Spec.from_yaml(text, source="fuzz.yaml")
    except ng.NestgraphError:
        return
    _round_trips(spec)


def check_json_text(text: bytes) -> None:
    try:
        spec = ng.Spec.from_dict(load_json(text, source="fuzz.json"), source="fuzz.json")
    except ng.NestgraphError:
        return
    _round_trips(spec)


def check_dict(data: Any) -> None:
    try:
        spec = ng.Spec.from_dict(data, source="fuzz")
    except ng.NestgraphError:
        return
    _round_trips(spec)


def check_path_text(text: str) -> None:
    try:
        keys = parse_path(text)
    except ng.NestgraphError:
        return
    assert parse_path(format_path(keys)) == keys


def check_policy_text(pattern: str, class_path: str) -> None:
    with contextlib.suppress(ng.ClassNotAllowedError):
        normalize_allow([pattern])
    before = set(sys.modules)
    try:
        cls = resolve_class(class_path)  # no allow: may not import anything
    except ng.ClassNotAllowedError:
        pass
    else:
        assert isinstance(cls, type)
    assert set(sys.modules) == before, "resolving without allow imported a module"


_PATH_TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from(["a", ".", "[", "]", '"', "\\", "0", "01", "u", "é", " ", "٣"])).map(
        "".join
    ),
)
_CLASS_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["os:system", "nestgraph:Spec", "collections:OrderedDict", "this:X"]),
    st.from_regex(r"[a-z_.]{1,12}:[A-Za-z_.]{1,12}", fullmatch=True),
)

#: name -> (property, strategy for its arguments, as a tuple)
PROPERTIES: dict[str, tuple[Callable[..., None], st.SearchStrategy[tuple[Any, ...]]]] = {
    "yaml_text": (check_yaml_text, st.tuples(mutated_text())),
    "json_text": (check_json_text, st.tuples(mutated_text(SEED_JSON))),
    "dicts": (check_dict, st.tuples(spec_like_dicts())),
    "paths": (check_path_text, st.tuples(_PATH_TEXT)),
    "policy": (check_policy_text, st.tuples(_CLASS_TEXT, _CLASS_TEXT)),
}


#: Fewer examples in the suite for the slower properties, so each takes about a second.
QUICK_EXAMPLES = {"dicts": 80, "policy": 120}


def run(name: str, profile: str = QUICK, **overrides: Any) -> None:
    """Run one property under ``profile`` (hypothesis raises on a failing example)."""
    check, arguments = PROPERTIES[name]
    if profile == QUICK and name in QUICK_EXAMPLES:
        overrides.setdefault("max_examples", QUICK_EXAMPLES[name])

    @settings(settings.get_profile(profile), **overrides)
    @given(arguments)
    def property_test(args: tuple[Any, ...]) -> None:
        check(*args)

    property_test()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="total time (default 1)")
    parser.add_argument("--only", choices=sorted(PROPERTIES), action="append")
    args = parser.parse_args(argv)
    names = args.only or list(PROPERTIES)
    stop = time.monotonic() + 60 * args.minutes
    rounds = dict.fromkeys(names, 0)
    while time.monotonic() < stop:
        for name in names:
            started = time.monotonic()
            run(name, LONG)
            rounds[name] += 1
            print(f"{name}: round {rounds[name]} passed ({time.monotonic() - started:.1f} s)")
            if time.monotonic() >= stop:
                break
    examples = settings.get_profile(LONG).max_examples
    print("done:", ", ".join(f"{n} {r * examples} examples" for n, r in rounds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
