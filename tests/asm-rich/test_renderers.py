"""The studio and verbose renderers, the coalescing view and the terminal sink, in process.

The studio's live text is fed to a terminal emulator (pyte) and the screen read back: what
a person would see, not the escape sequences."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asm_rich
import pyte
import pytest
import trio
import trio.testing
from asm_rich import CoalescingBuffer, StudioRenderer, VerboseRenderer, summarize
from asm_rich._live import LiveView
from asm_rich._style import Painter
from rich.color import ColorSystem

import asm
from asm.events import (
    ApprovalDenied,
    ApprovalRequested,
    CostUpdated,
    ErrorOccurred,
    Event,
    EventData,
    EventsCompacted,
    MessageReceived,
    MessageStreamed,
    PolicyViolation,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunStarted,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.model import Cost, TokenUsage
from asm.providers.scripted import ScriptedProvider

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(data: EventData, seconds: float = 0.0, run_id: str | None = "run_1") -> Event:
    return Event(id="e", session_id="ses_1", run_id=run_id, data=data, at=T0 + timedelta(seconds=seconds))


class Screen:
    """A pyte terminal the renderer's text is written to."""

    def __init__(self, columns: int = 60, lines: int = 16) -> None:
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.Stream(self.screen)

    def feed(self, text: str) -> None:
        self.stream.feed(text.replace("\n", "\r\n"))  # a terminal's output post-processing (onlcr)

    @property
    def lines(self) -> list[str]:
        rows = [line.rstrip() for line in self.screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return rows


def live_studio(**kwargs: Any) -> tuple[StudioRenderer, Screen, list[float]]:
    clock = [0.0]
    studio = StudioRenderer(live=True, width=60, clock=lambda: clock[0], now=lambda: T0 + timedelta(seconds=clock[0]))
    for key, value in kwargs.items():
        setattr(studio, key, value)
    return studio, Screen(), clock


def test_studio_live_a_spinner_while_a_tool_runs_then_its_summary_and_the_footer() -> None:
    studio, screen, clock = live_studio()
    screen.feed(studio.render(ev(RunStarted("scripted", "claude-x"))))
    screen.feed(studio.render(ev(MessageStreamed("Let me read "))))
    assert screen.lines == ["Let me read", "claude-x · 0 in / 0 out · 0.0s"]
    screen.feed(studio.render(ev(MessageStreamed("the app.\nOk"))))
    screen.feed(studio.render(ev(ToolCallStarted("c1", "Read", {"file_path": "src/app.py"}))))
    clock[0] = 1.3  # the spinner turned 13 times
    screen.feed(studio.refresh())
    assert screen.lines == ["Let me read the app.", "Ok", "◓ Reading src/app.py", "claude-x · 0 in / 0 out · 1.3s"]
    screen.feed(studio.render(ev(ToolCallCompleted("c1", "Read", "\n".join(["line"] * 72)))))
    screen.feed(studio.render(ev(TokenUsageUpdated(TokenUsage(1200, 300)))))
    screen.feed(studio.render(ev(TokenUsageUpdated(TokenUsage(100, 20)))))
    screen.feed(studio.render(ev(CostUpdated(Cost(total_usd=Decimal("0.0123"))))))
    clock[0] = 2.0
    screen.feed(studio.render(ev(ToolCallStarted("c2", "Bash", {"command": "make test"}))))
    screen.feed(studio.render(ev(ToolCallFailed("c2", "Bash", "exit 2"))))
    screen.feed(studio.render(ev(MessageStreamed("Done."))))
    assert screen.lines == [
        "Let me read the app.",
        "Ok",
        "✓ Read src/app.py (72 lines)",
        "✗ Bash: exit 2",
        "Done.",
        "claude-x · 1,300 in / 320 out · $0.0123 · 2.0s",
    ]
    screen.feed(studio.render(ev(RunCompleted("end_turn"), seconds=3.5)))
    screen.feed(studio.finish())
    assert screen.lines[-2:] == ["Done.", "claude-x · 1,300 in / 320 out · $0.0123 · 3.5s"]


def test_studio_live_long_text_wraps_itself_and_the_live_area_stays_below_it() -> None:
    studio, screen, _ = live_studio()
    screen.feed(studio.render(ev(RunStarted("scripted", "m"))))
    words = " ".join(f"word{n}" for n in range(40))
    for word in words.split(" "):
        screen.feed(studio.render(ev(MessageStreamed(word + " "))))
    lines = screen.lines
    assert " ".join(" ".join(lines[:-1]).split()) == words
    assert all(len(line) < 60 for line in lines)
    assert lines[-1].startswith("m · 0 in / 0 out")


def test_studio_thinking_is_collapsed_unless_asked_for() -> None:
    collapsed = StudioRenderer()
    text = "".join(
        collapsed.render(ev(data))
        for data in (RunStarted("p", "m"), ThinkingStreamed("I should read "), ThinkingStreamed("the file"))
    )
    text += collapsed.render(ev(MessageStreamed("Hi")))
    assert text == "✻ thought for 5 words (--thinking shows them)\nHi"
    shown = StudioRenderer(thinking=True)
    text = "".join(shown.render(ev(data)) for data in (ThinkingStreamed("hmm "), MessageStreamed("Hi")))
    assert text == "hmm \nHi"


def test_studio_not_live_writes_finished_lines_only() -> None:
    studio = StudioRenderer()
    out = [
        studio.render(ev(data, seconds))
        for seconds, data in [
            (0, RunStarted("scripted", "m")),
            (0, ToolCallStarted("c1", "Grep", {"pattern": "TODO", "path": "src"})),
            (1, ToolCallCompleted("c1", "Grep", "a.py:1\nb.py:2")),
            (2, RunCompleted("end_turn")),
        ]
    ]
    assert out == ["", "", "✓ Searched TODO in src (2 matches)\n", "m · 0 in / 0 out · 2.0s\n"]
    assert "\x1b" not in "".join(out)


def test_studio_replaying_a_compacted_log_shows_the_answer_in_place_of_its_deltas() -> None:
    studio = StudioRenderer()
    shown = "".join(
        studio.render(ev(data))
        for data in [
            RunStarted("scripted", "m"),
            EventsCompacted(first_seq=3, last_seq=9, count=7, run_id="run_1"),
            MessageReceived("Hello world"),
            RunCompleted("end_turn"),
        ]
    )
    streamed = [RunStarted("scripted", "m"), MessageStreamed("Hi"), MessageReceived("Hi"), RunCompleted("end_turn")]
    live = "".join(studio.render(ev(data, run_id="run_2")) for data in streamed)

    assert shown.splitlines()[0] == "Hello world"
    assert live.splitlines()[1] == "Hi" and live.count("Hi") == 1, "an answer streamed is not shown twice"


def test_studio_an_interrupted_attempt_ends_its_tools_and_says_what_happens_next() -> None:
    studio = StudioRenderer()
    shown = "".join(
        studio.render(ev(data))
        for data in [
            RunStarted("scripted", "m"),
            ToolCallStarted("c1", "Bash", {"command": "make"}),
            RunInterrupted(1, "worker w1 (host, pid 7)", "resume"),
        ]
    )

    assert shown.splitlines() == [
        "… Running make (did not finish)",
        "↻ attempt 1 interrupted: worker w1 (host, pid 7) stopped; then: resume [run_interrupted]",
    ]


def test_studio_errors_policy_violations_and_denials_are_red_with_their_code() -> None:
    studio = StudioRenderer(painter=Painter(ColorSystem.STANDARD))
    lines = [
        studio.render(ev(data))
        for data in (
            RunStarted("p", "m"),
            PolicyViolation("budget", "max_cost_usd", "cancel", {"limit": "0.01"}),
            ErrorOccurred("provider_rate_limited", "slow down"),
            ApprovalRequested("c1", "Bash", {"command": "rm -rf build"}),
            ApprovalDenied("c1", "Bash", "not now"),
            RunFailed("policy_violation", "budget exceeded"),
        )
    ]
    red = "\x1b[1;31m"
    assert lines[1] == f"{red}✗ policy budget [max_cost_usd] cancel: limit=0.01\x1b[0m\n"
    assert lines[2] == f"{red}✗ [provider_rate_limited] slow down\x1b[0m\n"
    assert lines[3] == "\x1b[33m? Bash needs approval: Running rm -rf build\x1b[0m\n"
    assert lines[4] == f"{red}✗ Bash denied: not now [approval_denied]\x1b[0m\n"
    assert lines[5].startswith(f"{red}✗ run failed [policy_violation] budget exceeded\x1b[0m\n")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("summary", ["✓ Ran ls (3 lines)"]),
        ("preview", ["✓ Ran ls (3 lines)", "  │ a", "  │ b", "  │ c"]),
        ("full", ["✓ Ran ls (3 lines)", "  │ a", "  │ b", "  │ c"]),
    ],
)
def test_studio_tool_output_option(mode: str, expected: list[str]) -> None:
    studio = StudioRenderer(tool_output=mode)  # type: ignore[arg-type]
    studio.render(ev(ToolCallStarted("c1", "shell", {"command": "ls"})))
    assert studio.render(ev(ToolCallCompleted("c1", "shell", "a\nb\nc"))).splitlines() == expected


def test_studio_preview_cuts_long_output() -> None:
    studio = StudioRenderer(tool_output="preview")
    studio.render(ev(ToolCallStarted("c1", "Read", {"path": "x"})))
    lines = studio.render(ev(ToolCallCompleted("c1", "Read", "\n".join(map(str, range(10)))))).splitlines()
    assert lines == ["✓ Read x (10 lines)", "  │ 0", "  │ 1", "  │ 2", "  │ … 7 more lines"]


@pytest.mark.parametrize(
    ("name", "tool_input", "output", "active", "done"),
    [
        ("Read", {"file_path": "src/app.py"}, "a\nb", "Reading src/app.py", "Read src/app.py (2 lines)"),
        ("Write", {"file_path": "a.txt", "content": "x\ny\n"}, None, "Writing a.txt", "Wrote a.txt (2 lines)"),
        (
            "Edit",
            {"file_path": "a.py", "old_string": "a", "new_string": "b\nc"},
            None,
            "Editing a.py",
            "Edited a.py (+2 -1)",
        ),
        (
            "Bash",
            {"command": "make test"},
            {"exit_code": 0, "stdout": "ok"},
            "Running make test",
            "Ran make test (exit 0, 1 line)",
        ),
        ("command_execution", {"command": "ls"}, None, "Running ls", "Ran ls"),
        ("Glob", {"pattern": "**/*.py"}, "a.py\nb.py", "Finding **/*.py", "Found 2 files for **/*.py"),
        ("WebFetch", {"url": "https://x.test"}, "hello", "Fetching https://x.test", "Fetched https://x.test (5 bytes)"),
        ("lookup", {"id": 7}, None, "Running lookup id=7", "lookup id=7 done"),
        ("lookup", {}, "a\nb", "Running lookup", "lookup (2 lines)"),
    ],
)
def test_tool_summaries(name: str, tool_input: dict[str, Any], output: Any, active: str, done: str) -> None:
    assert summarize(name, tool_input, output) == asm_rich.ToolSummary(active, done)


def test_verbose_one_labelled_line_per_event_values_cut_to_width() -> None:
    verbose = VerboseRenderer(width=20)
    line = verbose.render(ev(ToolCallStarted("call_1", "Read", {"file_path": "src/a_rather_long_name.py"})))
    assert line == '[tool_call_started] name=Read id=call_1 input={"file_path":"src/a…\n'
    assert verbose.render(ev(MessageStreamed("hi there"))) == '[message_streamed] delta="hi there" stream=null\n'
    assert (
        VerboseRenderer(width=0, seq=True)
        .render(attrs_seq(ev(RunCompleted("end_turn")), 7))
        .startswith("    7 [run_completed] stop_reason=end_turn")
    )


def attrs_seq(event: Event, seq: int) -> Event:
    import attrs

    return attrs.evolve(event, seq=seq)


def test_buffer_joins_text_deltas_and_counts_what_it_leaves_out() -> None:
    buffer = CoalescingBuffer(capacity=2)
    for data in (MessageStreamed("a"), MessageStreamed("b"), ThinkingStreamed("t"), MessageStreamed("c")):
        buffer.put(ev(data))
    buffer.put(ev(MessageStreamed("d")))
    buffer.put(ev(ToolCallStarted("c1", "Read")))  # past capacity: left out
    events, dropped = buffer.take()
    assert [e.data for e in events] == [MessageStreamed("ab"), ThinkingStreamed("t")]
    assert dropped == 3  # "c" and "d" (a new line of text, at capacity) and the tool call
    assert (buffer.received, buffer.coalesced, buffer.dropped) == (6, 1, 3)


def test_buffer_joins_only_deltas_of_one_run() -> None:
    buffer = CoalescingBuffer()
    buffer.put(ev(MessageStreamed("a"), run_id="r1"))
    buffer.put(ev(MessageStreamed("b"), run_id="r2"))
    assert [e.data.delta for e in buffer.take()[0]] == ["a", "b"]  # type: ignore[attr-defined]


class SlowSink:
    """A terminal that takes its time: each write waits until the test lets it go."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.release = trio.Event()
        self.writing = trio.Event()

    async def write(self, text: str, event: Event | None) -> None:
        self.writing.set()
        await self.release.wait()
        self.texts.append(text)

    async def aclose(self) -> None:
        pass


async def test_a_slow_terminal_never_holds_up_the_run_and_the_text_is_coalesced() -> None:
    sink = SlowSink()
    async with asm_rich.open_live_view(VerboseRenderer(width=0), [sink], capacity=8) as view:
        view(ev(MessageStreamed("first")))
        await sink.writing.wait()  # the first frame is stuck in the terminal
        for n in range(1000):  # the provider goes on: each call returns at once
            view(ev(MessageStreamed(f"{n} ")))
        for n in range(20):
            view(ev(ToolCallStarted(f"c{n}", "Read")))
        assert view.statistics().pending == 8
        sink.release.set()
    stats = view.statistics()
    assert (stats.received, stats.coalesced, stats.dropped, stats.pending) == (1021, 999, 13, 0)
    shown = "".join(sink.texts)
    assert '[message_streamed] delta="0 1 2 3' in shown and "999 " in shown
    assert "… 13 events not shown (the terminal fell behind; all are stored)" in shown


class BrokenSink:
    def __init__(self) -> None:
        self.writes = 0

    async def write(self, text: str, event: Event | None) -> None:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    async def aclose(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_closed_terminal_stops_the_view_not_the_run() -> None:
    sink = BrokenSink()
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ScriptedProvider(["a", "b", "c"]))
    async with asm_rich.open_live_view(StudioRenderer(), [sink]) as view:
        run = await manager.run_once("hi", on_event=view)
    assert run.status is asm.RunStatus.COMPLETED and run.output == "abc"
    assert view.output_lost and sink.writes == 1
    assert await manager.store.latest_seq(run.session_id) > 5


async def test_the_view_shows_a_whole_run_through_the_terminal_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = io.StringIO()
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ScriptedProvider(["Hello", " world"]))
    async with StudioRenderer().view(out) as show:
        await manager.run_once("hi", on_event=show)
    assert isinstance(show, LiveView)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Hello world" and lines[1].startswith("scripted · 0 in / 0 out · ")
    assert "\x1b" not in out.getvalue()  # not a terminal: no colours, no cursor movement


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("env", "colored"),
    [({}, True), ({"NO_COLOR": "1"}, False), ({"TERM": "dumb"}, False)],
)
def test_colours_follow_the_terminal_and_no_color(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], colored: bool
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLORTERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    studio = StudioRenderer()
    studio.view(FakeTerminal())
    line = studio.render(ev(ToolCallFailed("c", "Bash", "exit 2")))
    assert ("\x1b[31m" in line or "\x1b[1;31m" in line or "\x1b[91m" in line) is colored
    assert "✗ Bash: exit 2" in line


def test_force_color_colours_a_pipe_but_does_not_redraw_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    studio = StudioRenderer()
    studio.view(io.StringIO())
    assert not studio.live
    assert studio.render(ev(ToolCallFailed("c", "Bash", "exit 2"))).startswith("\x1b[")


def test_the_color_option_overrides_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    studio = StudioRenderer(color=False)
    studio.view(FakeTerminal())
    assert studio.live and "\x1b[3" not in studio.render(ev(ToolCallFailed("c", "Bash", "exit 2")))


def test_renderers_are_registered_with_their_options_checked() -> None:
    registry = asm.load_plugins()
    assert {"studio", "verbose"} <= set(registry.names("renderers"))
    assert "tty" in registry.names("sinks")
    studio = registry.create("renderers", "studio", {"tool_output": "preview", "show_spinner": False})
    assert (studio.tool_output, studio.show_spinner) == ("preview", False)
    with pytest.raises(asm.AsmError) as bad:
        registry.create("renderers", "studio", {"tool_output": "everything"})
    assert bad.value.code == "invalid_config" and "tool_output" in bad.value.message
    with pytest.raises(asm.AsmError) as unknown:
        registry.create("renderers", "studio", {"colour": True})
    assert unknown.value.code == "invalid_config" and "valid options: color" in unknown.value.message
    with pytest.raises(asm.AsmError) as negative:
        registry.create("renderers", "verbose", {"width": -1})
    assert negative.value.code == "invalid_config" and "width must be 0 or more" in negative.value.message


def test_the_exported_names() -> None:
    assert sorted(asm_rich.__all__) == sorted(
        [
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
    )
    for name in asm_rich.__all__:
        assert getattr(asm_rich, name) is not None


async def test_what_was_shown_just_before_the_block_ended_is_written() -> None:
    """`asm events SID` on a finished session: the events come at once and the block ends
    right after; a frame cancelled before its write is written when the view closes."""
    out = io.StringIO()
    async with VerboseRenderer().view(out) as show:
        for n in range(5):
            show(ev(ToolCallStarted(f"call_{n}", "Read")))
        await trio.testing.wait_all_tasks_blocked()  # the frame task took them and is writing
    assert [line.split(" ")[2] for line in out.getvalue().splitlines()] == [f"id=call_{n}" for n in range(5)]


def test_render_table_aligns_columns_and_colours_statuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    asm_rich.render_table(
        out,
        title="sessions",
        columns=["id", "status", "cost"],
        rows=[["s1", "completed", "$0.01"], ["s22", "failed", "$1.50"]],
    )
    plain = Screen(60, 8)
    plain.feed(out.getvalue())
    assert plain.lines == [
        "sessions",
        "",
        " id   status      cost",
        " ─────────────────────",
        " s1   completed  $0.01",
        " s22  failed     $1.50",
    ]
    assert "\x1b[32mcompleted" in out.getvalue() and "\x1b[1;31mfailed" in out.getvalue()


async def test_the_tty_sink_from_config_renders_every_event_with_no_thread_hop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`renderer = "studio"` and a `[sinks.tty]` table: a runtime's plain pipeline, to stdout."""
    monkeypatch.delenv("ASM_LOAD_PLUGINS", raising=False)
    config = asm.AsmConfig(provider="echo", renderer="studio", sinks={"tty": {}}, renderers={"studio": {"color": True}})
    async with asm.open_runtime(config) as runtime:
        sink = runtime.sinks[0]
        assert isinstance(sink, asm_rich.ConsoleSink) and not sink.threaded
        await runtime.run_once("hello there")
    shown = capsys.readouterr().out
    assert shown.startswith("hello there\n\x1b[2mecho · ")  # the footer, dim: colour was asked for
