"""Hostile bundle bytes: only NestgraphError subclasses come out, within a time budget.

Each property stops doing work once its budget is spent (the remaining
examples return at once), so the suite stays fast on a slow machine;
``benchmarks/fuzz_bundles.py --minutes 10`` runs the same checks for longer.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nestgraph as ng
from benchmarks.fuzz_bundles import (
    EDIT_KINDS,
    HOSTILE_OPS,
    honest_bundle,
    hostile_graph,
    members,
    mutate,
    mutated_checkpoint,
    only_nestgraph_errors,
    repack,
)
from nestgraph.bundle._container import unpack

BUDGET_SECONDS = 1.0
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def budgeted(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` until ``BUDGET_SECONDS`` after its first example; then return at once.

    Once an example fails the budget no longer applies, so hypothesis can replay
    and shrink it. Strategies draw outside the test body, so skipping the body
    changes nothing hypothesis sees.
    """
    started: list[float] = []
    failed: list[bool] = []

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        if not started:
            started.append(time.monotonic())
        if failed or time.monotonic() - started[0] < BUDGET_SECONDS:
            try:
                test(*args, **kwargs)
            except BaseException:
                failed.append(True)
                raise

    return run


# (kind, offset, chunk) edits; _within folds the offsets into the data's size.
EDIT = st.tuples(
    st.sampled_from(EDIT_KINDS), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)
)
EDITS = st.lists(
    EDIT,
    min_size=1,
    max_size=4,
)


def _within(size: int, edits: list[Any]) -> list[Any]:
    return [(kind, at % max(size, 1), chunk) for kind, at, chunk in edits]


@FUZZ
@given(edits=EDITS)
@budgeted
def test_mutated_bundle_bytes(edits: list[Any]) -> None:
    blob = honest_bundle()
    only_nestgraph_errors(mutate(blob, _within(len(blob), edits)))


@FUZZ
@given(edits=EDITS)
@budgeted
def test_mutated_graph_with_valid_checksums(edits: list[Any]) -> None:
    graph = members().graph
    only_nestgraph_errors(repack(graph=mutate(graph, _within(len(graph), edits))))


@FUZZ
@given(edits=EDITS)
@budgeted
def test_mutated_spec_with_valid_checksums(edits: list[Any]) -> None:
    spec = members().spec
    only_nestgraph_errors(repack(spec=mutate(spec, _within(len(spec), edits))))


@FUZZ
@given(edits=EDITS, name=st.sampled_from(["index", "data"]))
@budgeted
def test_mutated_checkpoint_with_valid_checksums(edits: list[Any], name: str) -> None:
    (file,) = [f for f in members().checkpoint if name in f]
    size = len(members().checkpoint[file])
    only_nestgraph_errors(mutated_checkpoint(name, _within(size, edits)))


@FUZZ
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(HOSTILE_OPS), st.lists(st.integers(0, 7), max_size=3)),
        min_size=1,
        max_size=8,
    )
)
@budgeted
def test_hostile_graphs_give_findings_or_errors(ops: list[tuple[str, list[int]]]) -> None:
    """Listed, unknown and plain ops wired at random (cycles included), the first one bound."""
    hostile = hostile_graph(ops)
    if ops[0][0] in ("WriteFile", "PyFunc", "While", "NoSuchOp"):
        assert not ng.scan(hostile).ok
    only_nestgraph_errors(hostile)


@FUZZ
@given(garbage=st.binary(max_size=512))
@budgeted
def test_arbitrary_bytes(garbage: bytes) -> None:
    only_nestgraph_errors(garbage)
    only_nestgraph_errors(b"PK\x03\x04" + garbage)


def test_the_honest_bundle_itself_loads() -> None:
    model, session = ng.loads(honest_bundle())
    with session:
        assert model.out.name == "out:0"
    assert unpack(io.BytesIO(honest_bundle()), "b").checkpoint_prefix == "model"
