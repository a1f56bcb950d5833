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
    only_nestgraph_errors,
    repack,
)
from nestgraph.bundle._container import unpack

BUDGET_SECONDS = 1.5
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def budgeted(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` until ``BUDGET_SECONDS`` after its first example; then return at once."""
    started: list[float] = []

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        if not started:
            started.append(time.monotonic())
        if time.monotonic() - started[0] < BUDGET_SECONDS:
            test(*args, **kwargs)

    return run


def edits(size: int) -> Any:
    edit = st.tuples(
        st.sampled_from(EDIT_KINDS),
        st.integers(0, max(size - 1, 0)),
        st.binary(min_size=1, max_size=8),
    )
    return st.lists(edit, min_size=1, max_size=4)


@FUZZ
@given(data=st.data())
@budgeted
def test_mutated_bundle_bytes(data: Any) -> None:
    blob = honest_bundle()
    only_nestgraph_errors(mutate(blob, data.draw(edits(len(blob)))))


@FUZZ
@given(data=st.data())
@budgeted
def test_mutated_graph_with_valid_checksums(data: Any) -> None:
    graph = members().graph
    only_nestgraph_errors(repack(graph=mutate(graph, data.draw(edits(len(graph))))))


@FUZZ
@given(data=st.data())
@budgeted
def test_mutated_spec_with_valid_checksums(data: Any) -> None:
    spec = members().spec
    only_nestgraph_errors(repack(spec=mutate(spec, data.draw(edits(len(spec))))))


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
