"""Rich tables for the CLI (``asm sessions list``, ``asm sessions show``): a header row,
aligned columns, statuses in colour, figures right-aligned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TextIO

from rich import box
from rich.table import Table
from rich.text import Text

from asm_rich._console import console_for

__all__ = ["STATUS_STYLES", "render_table"]

#: The colour of each session and run status.
STATUS_STYLES: Final = {
    "completed": "green",
    "active": "cyan",
    "running": "cyan",
    "pending": "dim",
    "paused": "yellow",
    "failed": "bold red",
    "cancelled": "yellow",
    "timeout": "red",
}
#: Columns whose text may wrap (the others keep to one line).
_WRAPS: Final = frozenset({"agent", "provider", "model", "error", ""})
#: Columns whose figures line up on the right.
_FIGURES: Final = frozenset({"cost", "tokens", "duration", "events", "runs", "in", "out", "seq"})


def render_table(
    out: TextIO | None,
    *,
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
) -> None:
    """Print ``rows`` under ``columns`` as a rich table on ``out`` (default: stdout); a
    ``status`` column is coloured by status, figures (cost, tokens, duration, ...) are
    right-aligned."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        header_style="bold",
        box=box.SIMPLE_HEAD,  # a rule under the header, no cell borders: room for the columns
        pad_edge=False,
        collapse_padding=True,
        show_header=any(columns),
    )
    for column in columns:
        table.add_column(column, justify="right" if column in _FIGURES else "left", no_wrap=column not in _WRAPS)
    status_at = [index for index, column in enumerate(columns) if column == "status"]
    for row in rows:
        cells: list[str | Text] = list(row)
        for index in status_at:
            cells[index] = Text(row[index], style=STATUS_STYLES.get(row[index], ""))
        table.add_row(*cells)
    console_for(out).print(table)
