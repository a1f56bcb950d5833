"""Aligned text columns, shared by the diff, the summary and the command line.

>>> print("\\n".join(format_table([("a", "tensor", "x:0"), ("long.path", "op", "train")])))
a          tensor  x:0
long.path  op      train
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_FIRST_COLUMN", "format_table"]

#: The first column (a dotted path) is capped, so one very long path cannot push the rest right.
MAX_FIRST_COLUMN = 60


def format_table(
    rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()
) -> list[str]:
    """Rows as aligned columns, one string per row.

    A column is as wide as its widest cell among the rows that have something
    after it, so one long last cell (a class path) does not push the others
    right. Columns whose index is in ``right`` are right-aligned (numbers).
    """
    filled = [list(row[: max((i + 1 for i, c in enumerate(row) if c), default=0)]) for row in rows]
    columns = max((len(row) for row in filled), default=0)
    # A left-aligned column is padded only where something follows it; a right-aligned
    # one (numbers) always, or its digits would not line up.
    width = [
        max(
            (len(row[i]) for row in filled if len(row) > i + 1 or (i in right and len(row) > i)),
            default=0,
        )
        for i in range(columns)
    ]
    if width:
        width[0] = min(width[0], MAX_FIRST_COLUMN)
    lines = []
    for row in filled:
        cells = []
        for i, cell in enumerate(row):
            if i in right:
                cells.append(cell.rjust(width[i]))
            elif i < len(row) - 1:
                cells.append(cell.ljust(width[i]))
            else:
                cells.append(cell)
        lines.append("  ".join(cells))
    return lines
