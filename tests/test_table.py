"""``nestgraph._table.format_table``: aligned columns for diff, summary and the CLI."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nestgraph._table import MAX_FIRST_COLUMN, format_table


def test_numbers_line_up_whether_or_not_a_note_follows() -> None:
    rows = [("a", "12", "note"), ("bb", "3"), ("c", "1,000")]
    assert format_table(rows, right=frozenset({1})) == [
        "a      12  note",
        "bb      3",
        "c   1,000",
    ]


def test_a_long_last_cell_does_not_push_the_others() -> None:
    rows = [("x", "tensor", "x:0"), ("y", "object", "a.very.long.module:WithAClassName")]
    assert format_table(rows) == ["x  tensor  x:0", "y  object  a.very.long.module:WithAClassName"]


def test_the_first_column_is_capped() -> None:
    long_path = "p" * (MAX_FIRST_COLUMN + 20)
    lines = format_table([(long_path, "op", "a"), ("q", "op", "b")])
    assert lines[1] == "q".ljust(MAX_FIRST_COLUMN) + "  op  b"


_cells = st.text(alphabet="abc,0123456789", max_size=6)


@given(st.lists(st.lists(_cells, min_size=1, max_size=4), max_size=6))
def test_every_cell_keeps_its_text_and_order(rows: list[list[str]]) -> None:
    lines = format_table(rows, right=frozenset({1}))
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows, strict=True):
        assert line.split() == [cell for cell in row if cell]
