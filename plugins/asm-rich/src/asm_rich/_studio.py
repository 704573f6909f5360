"""The ``studio`` renderer: a live view of a run for a person at a terminal.

What it shows, in order: the streamed answer as it arrives; each tool call as a line with a
spinner while it runs (``◐ Reading src/app.py``), replaced by its summary when it ends
(``✓ Read src/app.py (72 lines)`` / ``✗ Bash: exit 2``); thinking, dimmed, collapsed to one
line unless ``thinking = true``; errors and policy violations in red with their code; and a
footer: model, tokens in / out, cost so far and elapsed time.

Live (on a terminal) the text it returns redraws a small area at the bottom of the screen - the
unfinished line of the answer, the running tool calls, the footer - with cursor movements; each
finished line is written above it once and never touched again. Not live (a file, a pipe, a
replay) it writes finished lines only: no cursor movement, no spinner, the footer once per run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal, TextIO

import attrs
from rich.color import ColorSystem

from asm.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ArtifactStored,
    CostUpdated,
    ErrorOccurred,
    ErrorRecovered,
    Event,
    EventsCompacted,
    MessageReceived,
    MessageStreamed,
    PolicyViolation,
    RouteFailedOver,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunRetrying,
    RunStarted,
    RunTimeout,
    SessionFailed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    WorkspaceDiffComputed,
)
from asm.model import TokenUsage
from asm_rich._console import ConsoleSink, console_for, is_live_terminal
from asm_rich._live import LiveView, open_live_view
from asm_rich._style import Painter, fit
from asm_rich._summaries import output_lines, summarize

__all__ = ["SPINNER_FRAMES", "StudioRenderer", "ToolOutput"]

ToolOutput = Literal["summary", "preview", "full"]

#: The spinner of a running tool call (rich's ``circleHalves``), one frame per ``SPINNER_STEP`` s.
SPINNER_FRAMES: Final = "◐◓◑◒"
SPINNER_STEP: Final = 0.1
#: Lines of a tool's output that ``tool_output = "preview"`` shows.
PREVIEW_LINES: Final = 3

_ERASE_BELOW: Final = "\x1b[J"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@attrs.define
class _Running:
    name: str
    active: str


class StudioRenderer:
    """Renders a run as a person wants to watch it (see the module docstring).

    ``live`` redraws the bottom of a terminal ``width`` cells wide; ``painter`` colours
    the text (none: plain; :meth:`view` sets all three from the terminal and ``color``);
    ``tool_output`` is ``"summary"`` (one line per call),
    ``"preview"`` (and its first lines) or ``"full"`` (and all of its output);
    ``thinking`` shows the model's reasoning (dimmed) instead of one collapsed line;
    ``show_spinner`` animates running tool calls (else a still ``…``).
    """

    def __init__(
        self,
        *,
        tool_output: ToolOutput = "summary",
        thinking: bool = False,
        show_spinner: bool = True,
        color: bool | None = None,
        painter: Painter | None = None,
        live: bool = False,
        width: int = 80,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.tool_output = tool_output
        self.thinking = thinking
        self.show_spinner = show_spinner
        self.color = color
        # Without a view (a runtime's sinks), colours only when asked for: no terminal to ask.
        self.paint = painter or Painter(ColorSystem.EIGHT_BIT if color else None)
        self.live = live
        self.width = max(width, 20)
        self._clock = clock
        self._now = now
        self._epoch = clock()
        self._rows = 0  # rows of the live area on screen; the cursor is at its end
        self._partial = ""  # the unfinished line of streamed text (live) ...
        self._partial_kind = ""  # ... "message" or "thinking"
        self._thought_words = 0  # collapsed thinking under way
        self._tools: dict[str, _Running] = {}
        self._tool_inputs: dict[str, dict[str, Any]] = {}
        self._runs = 0
        self._model: str | None = None
        self._usage = TokenUsage()
        self._cost: Decimal | None = None
        self._started_at: datetime | None = None  # the run's run_started
        self._last_at: datetime | None = None
        self._in_run = False
        self._compacted: set[str | None] = set()  # runs whose deltas a store compacted away

    def view(self, out: TextIO | None = None) -> contextlib.AbstractAsyncContextManager[LiveView]:
        """Show events on ``out`` (default: stdout) behind a bounded buffer: live if it is
        a terminal, as wide as it is, coloured as rich and the ``color`` option say.

        >>> async with StudioRenderer().view() as show:  # doctest: +SKIP
        ...     await manager.run_once("hi", on_event=show)
        """
        console = console_for(out)
        self.live = is_live_terminal(console)
        self.width = max(console.width, 20)
        self.paint = Painter.for_console(console, self.color)
        return open_live_view(self, [ConsoleSink(console)])

    def table(self, out: TextIO | None, *, title: str | None, columns: list[str], rows: list[list[str]]) -> None:
        """Print a table for the CLI (``asm sessions list``) on ``out`` as a rich table."""
        from asm_rich._tables import render_table

        render_table(out, title=title, columns=columns, rows=rows)

    # -- the Renderer protocol --------------------------------------------------

    def render(self, event: Event) -> str:
        """The text that moves the screen on by ``event``."""
        out: list[str] = []
        self._apply(event, out)
        return self._frame(out)

    def render_all(self, events: Sequence[Event]) -> str:
        """The text for several events at once: the live area is redrawn once, not per event
        (what the view calls for each frame)."""
        out: list[str] = []
        for event in events:
            self._apply(event, out)
        return self._frame(out)

    def refresh(self) -> str:
        """Redraw the live area (the spinner turns, the elapsed time moves on); '' when not live
        or there is nothing that moves."""
        if not self.live or not (self._in_run or self._tools):
            return ""
        return self._frame([])

    def finish(self) -> str:
        """Clear the live area and end the last line."""
        out: list[str] = []
        self._close_partial(out)
        self._close_thinking(out)
        for running in self._tools.values():
            out.append(self.paint(f"… {running.active} (did not finish)", "warn") + "\n")
        self._tools.clear()
        if self._in_run:
            out.append(self._footer_line() + "\n")
            self._in_run = False
        text = self._erase() + "".join(out)
        self._rows = 0
        return text

    def suspend(self) -> str:
        """Clear the live area (before a question at the terminal); the next text draws it again below."""
        text = self._erase()
        self._rows = 0
        return text

    def note(self, text: str) -> str:
        """A dim line of the view's own (``… 12 events not shown``)."""
        return self._frame([self.paint(text, "dim") + "\n"])

    # -- the live area -------------------------------------------------------------

    def _frame(self, committed: list[str]) -> str:
        if not self.live:
            return "".join(committed)
        return self._erase() + "".join(committed) + self._draw()

    def _erase(self) -> str:
        if not self._rows:
            return ""
        up = f"\x1b[{self._rows - 1}A" if self._rows > 1 else ""
        return f"\r{up}{_ERASE_BELOW}"

    def _draw(self) -> str:
        lines: list[str] = []
        room = self.width - 1
        if self._partial:
            style = "thinking" if self._partial_kind == "thinking" else ""
            text = fit(self._partial, room)
            lines.append(self.paint(text, style) if style else text)
        if self._thought_words:
            lines.append(self.paint(fit(f"✻ thinking… ({self._thought_words:,} words)", room), "thinking"))
        spinner = self._spinner()
        for running in self._tools.values():
            lines.append(self.paint(spinner, "spinner") + " " + fit(running.active, room - 2))
        if self._in_run:
            lines.append(self.paint(fit(self._footer(), room), "footer"))
        self._rows = len(lines)
        return "\n".join(lines)

    def _spinner(self) -> str:
        if not self.show_spinner:
            return "…"
        step = int((self._clock() - self._epoch) / SPINNER_STEP)
        return SPINNER_FRAMES[step % len(SPINNER_FRAMES)]

    # -- events --------------------------------------------------------------------

    def _apply(self, event: Event, out: list[str]) -> None:
        data = event.data
        self._last_at = event.at
        if isinstance(data, MessageStreamed):
            self._close_thinking(out)
            self._stream(data.delta, "message", out)
            return
        if isinstance(data, ThinkingStreamed):
            if self.thinking:
                self._stream(data.delta, "thinking", out)
            else:
                self._close_partial(out)
                self._thought_words += len(data.delta.split()) or 0
            return
        if isinstance(data, EventsCompacted):  # replaying a compacted log: no deltas for this run ...
            self._compacted.add(data.run_id)
            return
        if isinstance(data, MessageReceived) and event.run_id in self._compacted:
            self._close_thinking(out)  # ... so its whole answer stands in for them
            self._stream(data.content, "message", out)
            return
        if isinstance(data, TokenUsageUpdated):
            self._usage = self._usage + data.usage
            self._model = data.model or self._model
            return
        if isinstance(data, CostUpdated):
            self._cost = data.cost.total_usd
            return
        # Anything else ends the streamed line and any collapsed thinking.
        self._close_partial(out)
        self._close_thinking(out)
        handler = _HANDLERS.get(type(data))
        if handler is not None:
            handler(self, event, out)

    def _run_started(self, event: Event, out: list[str]) -> None:
        data = event.data
        assert isinstance(data, RunStarted)
        if self._runs:
            out.append(self.paint(f"── run {event.run_id or ''} ──", "dim") + "\n")
        self._runs += 1
        self._in_run = True
        self._model = data.model or data.provider
        self._usage = TokenUsage()
        self._cost = None
        self._started_at = event.at

    def _run_ended(self, event: Event, out: list[str]) -> None:
        data = event.data
        if isinstance(data, RunFailed):
            out.append(self.paint(f"✗ run failed [{data.error_code}] {_line(data.error_message)}", "error") + "\n")
        elif isinstance(data, RunCancelled):
            reason = f": {data.reason}" if data.reason else ""
            out.append(self.paint(f"✗ cancelled{reason}", "error") + "\n")
        elif isinstance(data, RunTimeout):
            out.append(self.paint(f"✗ timed out after {data.timeout_s:g}s [run_timeout]", "error") + "\n")
        for running in self._tools.values():
            out.append(self.paint(f"… {running.active} (did not finish)", "warn") + "\n")
        self._tools.clear()
        if isinstance(data, RunCompleted) and data.model:
            self._model = data.model
        if self._in_run:
            self._in_run = False  # the footer's elapsed time now ends at this event
            out.append(self._footer_line() + "\n")

    def _tool_started(self, event: Event, out: list[str]) -> None:
        data = event.data
        assert isinstance(data, ToolCallStarted)
        summary = summarize(data.tool_name, data.tool_input)
        self._tools[data.tool_call_id] = _Running(data.tool_name, summary.active)
        self._tool_inputs[data.tool_call_id] = data.tool_input

    def _tool_completed(self, event: Event, out: list[str]) -> None:
        data = event.data
        assert isinstance(data, ToolCallCompleted)
        self._tools.pop(data.tool_call_id, None)
        tool_input = self._tool_inputs.pop(data.tool_call_id, {})
        summary = summarize(data.tool_name, tool_input, data.tool_output)
        out.append(self.paint("✓", "ok") + " " + summary.done + "\n")
        if self.tool_output != "summary":
            lines = output_lines(data.tool_output)
            shown = lines if self.tool_output == "full" else lines[:PREVIEW_LINES]
            room = self.width - 5
            out.extend(self.paint(f"  │ {fit(line, room)}", "dim") + "\n" for line in shown)
            if len(shown) < len(lines):
                out.append(self.paint(f"  │ … {len(lines) - len(shown):,} more lines", "dim") + "\n")

    def _tool_failed(self, event: Event, out: list[str]) -> None:
        data = event.data
        assert isinstance(data, ToolCallFailed)
        self._tools.pop(data.tool_call_id, None)
        self._tool_inputs.pop(data.tool_call_id, None)
        out.append(self.paint(f"✗ {data.tool_name}: {_line(data.error_message)}", "error") + "\n")

    def _approval(self, event: Event, out: list[str]) -> None:
        data = event.data
        if isinstance(data, ApprovalRequested):
            what = summarize(data.tool_name, data.tool_input).active
            out.append(self.paint(f"? {data.tool_name} needs approval: {what}", "warn") + "\n")
        elif isinstance(data, ApprovalGranted):
            out.append(self.paint("✓", "ok") + f" {data.tool_name} approved\n")
        elif isinstance(data, ApprovalDenied):
            reason = f": {data.reason}" if data.reason else ""
            out.append(self.paint(f"✗ {data.tool_name} denied{reason} [approval_denied]", "error") + "\n")

    def _problem(self, event: Event, out: list[str]) -> None:
        data = event.data
        if isinstance(data, PolicyViolation):
            detail = " ".join(f"{k}={v}" for k, v in list(data.details.items())[:3])
            text = f"✗ policy {data.policy} [{data.kind}] {data.action}" + (f": {detail}" if detail else "")
            out.append(self.paint(text, "error") + "\n")
        elif isinstance(data, ErrorOccurred | SessionFailed):
            out.append(self.paint(f"✗ [{data.error_code}] {_line(data.error_message)}", "error") + "\n")
        elif isinstance(data, RunRetrying):
            text = f"↻ retry {data.attempt} in {data.delay_s:g}s after [{data.error_code}] {_line(data.error_message)}"
            out.append(self.paint(text, "warn") + "\n")
        elif isinstance(data, RunInterrupted):
            for running in self._tools.values():  # the attempt's calls stopped with it
                out.append(self.paint(f"… {running.active} (did not finish)", "warn") + "\n")
            self._tools.clear()
            text = f"↻ attempt {data.attempt} interrupted: {data.owner} stopped; then: {data.then} [run_interrupted]"
            out.append(self.paint(text, "warn") + "\n")
        elif isinstance(data, ErrorRecovered):
            out.append(self.paint(f"✓ recovered from [{data.error_code}]", "ok") + "\n")
        elif isinstance(data, RouteFailedOver):
            text = f"↻ {data.router}: {data.member} failed [{data.error_code}], trying the next member"
            out.append(self.paint(text, "warn") + "\n")

    def _aside(self, event: Event, out: list[str]) -> None:
        data = event.data
        if isinstance(data, WorkspaceDiffComputed):
            text = f"workspace: {data.files_changed} files changed (+{data.insertions} -{data.deletions})"
            out.append(self.paint(text, "dim") + "\n")
        elif isinstance(data, ArtifactStored):
            out.append(self.paint(f"artifact {data.key} ({data.size:,} bytes)", "dim") + "\n")

    # -- text ----------------------------------------------------------------------

    def _stream(self, delta: str, kind: str, out: list[str]) -> None:
        if kind != self._partial_kind:
            self._close_partial(out)
            self._partial_kind = kind
        style = "thinking" if kind == "thinking" else ""
        if not self.live:
            out.append(self.paint(delta, style) if style else delta)
            self._partial = "x" if not delta.endswith("\n") else ""  # only whether a line is open
            return
        text = self._partial + delta
        *done, rest = text.split("\n")
        for line in done:
            out.extend(self._wrapped(line, style))
        # The unfinished line stays one row high: what does not fit is written out now,
        # cut at the last space that fits (walking an index: a long joined delta is not
        # copied once per row).
        room = self.width - 1
        start = 0
        while len(rest) - start > room and (rest.isascii() or fit(rest[start:], room) != rest[start:]):
            cut = rest.rfind(" ", start, start + room)
            end = cut + 1 if cut > start + room // 2 else start + room
            out.extend(self._wrapped(rest[start:end].rstrip(" "), style))
            start = end
        self._partial = rest[start:]

    def _wrapped(self, line: str, style: str) -> list[str]:
        return [(self.paint(line, style) if style else line) + "\n"]

    def _close_partial(self, out: list[str]) -> None:
        if self._partial:
            if self.live:
                style = "thinking" if self._partial_kind == "thinking" else ""
                out.append((self.paint(self._partial, style) if style else self._partial) + "\n")
            else:
                out.append("\n")
        self._partial = ""
        self._partial_kind = ""

    def _close_thinking(self, out: list[str]) -> None:
        if self._thought_words:
            text = f"✻ thought for {self._thought_words:,} words (--thinking shows them)"
            out.append(self.paint(text, "thinking") + "\n")
            self._thought_words = 0

    # -- the footer ----------------------------------------------------------------

    def _footer(self) -> str:
        parts = [self._model or "-"]
        parts.append(f"{self._usage.input_tokens:,} in / {self._usage.output_tokens:,} out")
        if self._cost is not None:
            parts.append(f"${self._cost:.4f}")
        parts.append(_elapsed(self._elapsed()))
        return " · ".join(parts)

    def _footer_line(self) -> str:
        return self.paint(self._footer(), "footer")

    def _elapsed(self) -> float:
        if self._started_at is None:
            return 0.0
        # While a run is shown live, the time since it started (also when watching it
        # with `asm events --follow`); else up to the last event seen (a replay).
        until = self._now() if self.live and self._in_run else (self._last_at or self._started_at)
        return max((until - self._started_at).total_seconds(), 0.0)


def _line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 200 else first[:199] + "…"


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


_HANDLERS: Final[dict[type, Callable[[StudioRenderer, Event, list[str]], None]]] = {
    RunStarted: StudioRenderer._run_started,
    RunCompleted: StudioRenderer._run_ended,
    RunFailed: StudioRenderer._run_ended,
    RunCancelled: StudioRenderer._run_ended,
    RunTimeout: StudioRenderer._run_ended,
    ToolCallStarted: StudioRenderer._tool_started,
    ToolCallCompleted: StudioRenderer._tool_completed,
    ToolCallFailed: StudioRenderer._tool_failed,
    ApprovalRequested: StudioRenderer._approval,
    ApprovalGranted: StudioRenderer._approval,
    ApprovalDenied: StudioRenderer._approval,
    PolicyViolation: StudioRenderer._problem,
    ErrorOccurred: StudioRenderer._problem,
    SessionFailed: StudioRenderer._problem,
    RunRetrying: StudioRenderer._problem,
    RunInterrupted: StudioRenderer._problem,
    ErrorRecovered: StudioRenderer._problem,
    RouteFailedOver: StudioRenderer._problem,
    WorkspaceDiffComputed: StudioRenderer._aside,
    ArtifactStored: StudioRenderer._aside,
}
