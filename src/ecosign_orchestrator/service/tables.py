"""Tables that fit the terminal: every row on its own lines, no column squeezed to nothing.

Rich shrinks every column in proportion when a table is too wide, so at 80 columns a table of
eight columns ends with ids cut at their unique end and words broken a letter per line. Here each
table states, per column, how narrow it may get and which columns go first when even that does
not fit; the widths are then fixed before Rich sees the table:

- fixed columns (ids, statuses, times, counts) keep the width of their widest value;
- at most a few ``flex`` columns (a reason, an answer, a message) share what is left, wrapping at
  spaces, and a word longer than its column ends in ``…`` instead of breaking across lines;
- while the fixed columns and the flex minimums do not fit, the lowest-``keep`` column is dropped
  (and said so in the caption), so what is shown is always whole.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

#: Between two columns: a space, the (invisible) divider, a space.
GAP = 3

Cell = str | Text


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """How one column behaves when space is short."""

    header: str
    #: Higher is kept longer; the lowest goes first when the table does not fit.
    keep: int = 50
    #: Shares the leftover width (wraps at spaces), never narrower than ``min_width``.
    flex: bool = False
    min_width: int = 12
    justify: str = "left"
    #: The width this column always takes (rows printed one by one line up under one header).
    size: int | None = None


def _width(cell: Cell) -> int:
    text = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in text.splitlines()), default=0)


def layout(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> list[int]:
    """Each column's width (0 for a column dropped) so the table fits in ``width``."""
    natural = [
        c.size or max([cell_len(c.header), *(_width(row[i]) for row in rows)])
        for i, c in enumerate(columns)
    ]
    kept = list(range(len(columns)))

    def needed(index: int) -> int:
        column = columns[index]
        return min(natural[index], column.min_width) if column.flex else natural[index]

    while len(kept) > 1 and sum(map(needed, kept)) + GAP * (len(kept) - 1) > width:
        kept.remove(min(kept, key=lambda i: (columns[i].keep, -i)))
    widths = [needed(i) if i in kept else 0 for i in range(len(columns))]
    spare = width - sum(widths) - GAP * (len(kept) - 1)
    flexible = [i for i in kept if columns[i].flex]
    # Share what is left, narrowest need first, so a short reason does not take space from a
    # long answer.
    for position, index in enumerate(sorted(flexible, key=lambda i: natural[i])):
        share = spare // (len(flexible) - position)
        room = share if columns[index].size else natural[index] - widths[index]
        grow = max(min(room, share), 0)
        widths[index] += grow
        spare -= grow
    if len(kept) == 1 and widths[kept[0]] > width:  # one column wider than the screen
        widths[kept[0]] = max(width, 1)
    return widths


def fitted(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int,
    title: str | None = None,
    show_header: bool = True,
) -> Table:
    """A Rich table of ``rows`` laid out for a terminal ``width`` columns wide."""
    widths = layout(columns, rows, width)
    dropped = [c.header for c, w in zip(columns, widths, strict=True) if w == 0]
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        show_header=show_header,
        expand=False,
        caption=f"(too narrow for: {', '.join(dropped)}; use --json for everything)"
        if dropped
        else None,
        caption_justify="left",
    )
    for column, size in zip(columns, widths, strict=True):
        if size:
            table.add_column(
                column.header,
                width=size,
                no_wrap=not column.flex,
                overflow="ellipsis",
                justify=column.justify,  # type: ignore[arg-type]
            )
    for row in rows:
        # Plain text, never Rich markup: an error message may hold "[...]".
        cells = (Text(c) if isinstance(c, str) else c for c in row)
        table.add_row(*(cell for cell, size in zip(cells, widths, strict=True) if size))
    return table


def terminal_width(stream: Any, *, piped: int = 200) -> int | None:
    """The width to give a Rich console on ``stream``: None (its terminal's, or ``COLUMNS``)
    on a terminal or when ``COLUMNS`` is set; else ``piped``, so a file or pipe gets whole
    lines."""
    return None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else piped


def short_id(job_id: str) -> str:
    """The random end of a job id (UUIDv7): what tables show and what every command accepts."""
    return job_id[-12:]
