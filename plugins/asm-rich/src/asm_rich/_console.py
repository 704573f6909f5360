"""The terminal sink, on rich's :class:`~rich.console.Console`.

rich decides what the terminal can do: whether it is one, its width, its colour system,
and the conventions ``NO_COLOR`` (no colours), ``FORCE_COLOR`` (colours even into a pipe)
and ``TERM=dumb``. The sink writes the renderer's text as it is, in a worker thread, so a
slow terminal holds up the writing thread and never the run.
"""

from __future__ import annotations

import sys
from typing import TextIO

import trio
from rich.console import Console

from asm.events import Event

__all__ = ["ConsoleSink", "console_for", "is_live_terminal"]


def console_for(out: TextIO | None = None) -> Console:
    """A rich console writing to ``out`` (default: stdout), which reads the environment
    (``NO_COLOR``, ``FORCE_COLOR``, ``TERM``, ``COLUMNS``) as rich does."""
    return Console(file=out or sys.stdout, highlight=False, soft_wrap=True, emoji=False, markup=False)


def is_live_terminal(console: Console) -> bool:
    """Whether the console writes to a real terminal that can move its cursor (a
    ``FORCE_COLOR`` pipe colours, but is no terminal to redraw)."""
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty and isatty()) and not console.is_dumb_terminal
    except ValueError:  # a closed file
        return False


class ConsoleSink:
    """Writes rendered text to a rich console (default: one on stdout).

    ``threaded``: each write happens in a worker thread, so a slow terminal holds up that
    thread and not the caller (what a view, written once a frame, wants); unthreaded, a
    write is a plain write, as cheap as :class:`~asm.rendering.FileSink`'s (what a sink
    called for every event wants). ``aclose`` flushes. The text is written as it is: a
    renderer's escape sequences pass through, and ``color`` is the renderer's to decide
    (:class:`~asm_rich.Painter`).
    """

    def __init__(self, console: Console | None = None, *, threaded: bool = True) -> None:
        self.console = console or console_for()
        self.threaded = threaded

    async def write(self, text: str, event: Event | None) -> None:
        """Write ``text`` (nothing for empty text)."""
        if not text:
            return
        if self.threaded:
            await trio.to_thread.run_sync(self._write, text)
        else:
            self._write(text)

    def _write(self, text: str) -> None:
        file = self.console.file
        file.write(text)
        file.flush()

    async def aclose(self) -> None:
        """Flush (the console's file is not closed: it is stdout or the caller's)."""
        self.console.file.flush()
