"""Fuzzing in the suite: hostile spec text and data give only NestgraphErrors.

Each property runs under the ``nestgraph-fuzz-quick`` hypothesis profile (a
fixed number of examples, about a second per property); the same properties
run for as long as you like with ``python benchmarks/fuzz_specs.py --minutes 10``.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path

import pytest
from hypothesis import Phase

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nestgraph as ng
from benchmarks import fuzz_specs
from nestgraph._yamlio import load_json


@pytest.mark.parametrize("name", sorted(fuzz_specs.PROPERTIES))
def test_only_nestgraph_errors_escape(name: str) -> None:
    fuzz_specs.run(name)


def test_the_seed_spec_is_valid_and_round_trips() -> None:
    # The mutations start from a spec every reader accepts, so they probe the edges.
    spec = ng.Spec.from_yaml(fuzz_specs.SEED_YAML)
    from_json = ng.Spec.from_dict(load_json(fuzz_specs.SEED_JSON))
    assert json.dumps(from_json.to_dict()) == json.dumps(spec.to_dict())
    fuzz_specs.check_yaml_text(fuzz_specs.SEED_YAML.encode())
    fuzz_specs.check_json_text(fuzz_specs.SEED_JSON.encode())
    assert len(list(spec.bindings())) >= 9


def test_a_failing_reader_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The property is not vacuous: a reader leaking a non-NestgraphError fails it.
    def leaky(*args: object, **kwargs: object) -> None:
        raise KeyError("leak")

    monkeypatch.setattr(ng.Spec, "from_yaml", leaky)
    with pytest.raises(KeyError, match="leak"):
        fuzz_specs.run("yaml_text", max_examples=5, phases=[Phase.generate])


class _Small(enum.IntEnum):
    A = 1


@pytest.mark.parametrize(
    "value",
    [10**5000, "str \ud800", _Small.A, type("S", (str,), {})("str x")],
    ids=["huge-int", "surrogate", "int-enum", "str-subclass"],
)
def test_from_dict_refuses_unwritable_scalars(value: object) -> None:
    with pytest.raises(ng.SpecError, match="x"):
        ng.Spec.from_dict({"nestgraph": 1, "class": "p.m:M", "fields": {"x": value}})
