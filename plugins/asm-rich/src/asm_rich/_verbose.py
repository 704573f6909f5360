"""The ``verbose`` renderer: one labelled line per event, every field shown.

::

    [run_started] provider=scripted model=scripted
    [tool_call_started] name=Read id=call_1 input={"file_path":"src/app.py"}
    [tool_call_completed] name=Read id=call_1 output="import trio\\nimport attrs\\n…"

Each value is JSON (a plain word, id or path unquoted) cut to ``width`` characters with ``…``.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any, Final, TextIO

from rich.color import ColorSystem

from asm.events import Event
from asm.serde import unstructure
from asm_rich._console import ConsoleSink, console_for
from asm_rich._live import LiveView, open_live_view
from asm_rich._style import Painter

__all__ = ["VerboseRenderer"]

#: Field names shortened on the line (the rest keep their own).
_SHORT: Final = {"tool_name": "name", "tool_call_id": "id", "tool_input": "input", "tool_output": "output"}
#: Strings shown without quotes: no spaces, quotes or escapes to misread.
_BARE: Final = re.compile(r"[\w.:/@+-]+")
_ERRORS: Final = frozenset(
    {"run_failed", "error_occurred", "session_failed", "tool_call_failed", "policy_violation", "approval_denied"}
)


class VerboseRenderer:
    """One line per event: ``[type] key=value ...``, each value cut to ``width`` characters
    (``width = 0``: never cut); ``seq`` adds the event's seq, ``painter`` colours the label
    (:meth:`view` picks it from the terminal and ``color``)."""

    def __init__(
        self, *, width: int = 80, seq: bool = False, color: bool | None = None, painter: Painter | None = None
    ) -> None:
        self.width = width
        self.seq = seq
        self.color = color
        self.paint = painter or Painter(ColorSystem.EIGHT_BIT if color else None)

    def view(self, out: TextIO | None = None) -> contextlib.AbstractAsyncContextManager[LiveView]:
        """Show events on ``out`` (default: stdout) behind a bounded buffer, coloured as
        rich and the ``color`` option say."""
        console = console_for(out)
        self.paint = Painter.for_console(console, self.color)
        return open_live_view(self, [ConsoleSink(console)])

    def render(self, event: Event) -> str:
        """The event's line."""
        fields = unstructure(event.data)
        if "tool_name" in fields:  # the tool first: [tool_call_started] name=Read id=call_1 input=...
            fields = {"tool_name": fields.pop("tool_name"), **fields}
        parts = [f"{_SHORT.get(key, key)}={self._value(value)}" for key, value in fields.items() if key != "type"]
        label = f"[{event.type.value}]"
        label = self.paint(label, "error" if event.type.value in _ERRORS else "label")
        prefix = f"{event.seq:>5} " if self.seq and event.seq is not None else ""
        return prefix + " ".join([label, *parts]) + "\n"

    def _value(self, value: Any) -> str:
        if isinstance(value, str) and value and _BARE.fullmatch(value):
            text = value  # a name, an id, a path: shown as it is
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        if self.width and len(text) > self.width:
            return text[: max(self.width - 1, 1)] + "…"
        return text

    def note(self, text: str) -> str:
        """A line of the view's own."""
        return self.paint(text, "dim") + "\n"

    def finish(self) -> str:
        """Nothing: every line already ended."""
        return ""
