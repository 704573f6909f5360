"""asm-rich: watching runs at a terminal.

- renderer ``studio``: a live view of a run - the answer as it streams, each tool call a
  line with a spinner while it runs and its summary after, thinking dimmed (collapsed
  unless ``thinking = true``), errors and policy violations in red with their code, and a
  footer with the model, tokens in / out, cost so far and elapsed time;
- renderer ``verbose``: one labelled line per event, values cut to ``width``;
- sink ``tty``: rendered text to the terminal through rich's Console;
- rich tables for ``asm sessions list`` / ``asm sessions show`` on a terminal (the studio
  renderer's ``table()``, which the CLI asks for through ``asm._cli_view.print_table``).

``asm run``, ``asm events SID`` and ``asm events SID --follow`` use ``studio`` when stdout
is a terminal (``--renderer NAME`` picks another). In a program::

    async with asm_rich.StudioRenderer().view() as show:
        await manager.run_once("fix the tests", on_event=show)

Options (``[renderers.studio]``): ``tool_output = "summary" | "preview" | "full"``,
``thinking``, ``color`` (unset: as the terminal and NO_COLOR/FORCE_COLOR say),
``show_spinner``; ``[renderers.verbose]``: ``width``, ``seq``, ``color``. See docs/rendering.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy, lazy_attributes

if TYPE_CHECKING:
    from asm_rich._console import ConsoleSink, console_for
    from asm_rich._factories import StudioOptions, VerboseOptions
    from asm_rich._live import CoalescingBuffer, LiveView, ViewStatistics, open_live_view
    from asm_rich._studio import StudioRenderer
    from asm_rich._style import Painter
    from asm_rich._summaries import ToolSummary, summarize
    from asm_rich._tables import render_table
    from asm_rich._verbose import VerboseRenderer

__all__ = [
    "CoalescingBuffer",
    "ConsoleSink",
    "LiveView",
    "Painter",
    "StudioOptions",
    "StudioRenderer",
    "ToolSummary",
    "VerboseOptions",
    "VerboseRenderer",
    "ViewStatistics",
    "console_for",
    "open_live_view",
    "render_table",
    "summarize",
]

# rich (and attrs) are imported when something is used, not when asm loads its plugins (every command).
_HOME = {
    "StudioOptions": "_factories",
    "VerboseOptions": "_factories",
    "CoalescingBuffer": "_live",
    "LiveView": "_live",
    "ViewStatistics": "_live",
    "open_live_view": "_live",
    "ConsoleSink": "_console",
    "console_for": "_console",
    "Painter": "_style",
    "StudioRenderer": "_studio",
    "ToolSummary": "_summaries",
    "summarize": "_summaries",
    "render_table": "_tables",
    "VerboseRenderer": "_verbose",
}


__getattr__ = lazy_attributes(__name__, _HOME)


@hookimpl
def asm_register_renderers(register: Register) -> None:
    register("studio", lazy("asm_rich._factories:make_studio"))
    register("verbose", lazy("asm_rich._factories:make_verbose"))


@hookimpl
def asm_register_sinks(register: Register) -> None:
    register("tty", lazy("asm_rich._factories:make_tty"))
