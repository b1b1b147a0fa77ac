"""Console output for every palier command, the same whatever the terminal's width.

Messages are never wrapped by us (``soft_wrap``): a path or an error stays on one line, so it
can be read, copied and grepped whatever the terminal width or the path length. A table is
drawn as a table only when every cell fits on one line; otherwise (a narrow terminal, long
cells) each row becomes a block of ``column: value`` lines. Output that is not a terminal is
rendered for a fixed width, so a log or a pipe gets the same text whatever ``COLUMNS`` says.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPE_WIDTH = 120  # the width a table may take in a log or a pipe


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=None if tty else PIPE_WIDTH)


def _cell_width(cell: str) -> int:
    return max((Text.from_markup(line).cell_len for line in cell.split("\n")), default=0)


def fits(columns: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> bool:
    """Would a bordered table with these cells, none wrapped, fit in ``width`` columns?"""
    widths = [max([len(c)] + [_cell_width(r[i]) for r in rows]) for i, c in enumerate(columns)]
    return sum(widths) + 3 * len(columns) + 1 <= width


def print_table(out: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                show_lines: bool = False) -> None:
    """A table when it fits without wrapping a cell; else one block per row (column: value)."""
    rows = [[str(c) for c in r] for r in rows]
    if fits(columns, rows, out.width):
        table = Table(title=title, show_lines=show_lines)
        for col in columns:
            table.add_column(col, no_wrap=True, overflow="fold")
        for r in rows:
            table.add_row(*r)
        out.print(table, soft_wrap=False)
        return
    if title:
        out.print(f"[bold]{title}[/]")
    label = max((len(c) for c in columns if c), default=0) + 1
    for r in rows:
        out.print()
        heading = " ".join(cell for col, cell in zip(columns, r) if not col and cell)
        if heading:  # an unnamed column (a status mark) heads its block
            out.print(heading)
        for col, cell in zip(columns, r):
            if not col or not cell:
                continue
            first, *rest = cell.split("\n")
            out.print(f"  {(col + ':').ljust(label)} {first}")
            for line in rest:
                out.print(f"  {' ' * label} {line}")
