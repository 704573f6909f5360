"""The compact renderer's tokens, the file / JSONL / callback sinks, and the pipeline
that feeds them as an ``on_event`` callback."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from asm import AsmError, EchoProvider, InMemorySessionStore, SessionManager, TokenUsage
from asm.events import (
    ErrorOccurred,
    Event,
    EventData,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    PolicyViolation,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunStarted,
    RunTimeout,
    SessionCompleted,
    SessionCreated,
    SessionFailed,
    SessionStarted,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.rendering import CallbackSink, CompactRenderer, FileSink, JsonlSink, RenderingPipeline
from asm.serde import event_from_json


def events(*payloads: EventData) -> list[Event]:
    return [Event.new(data, session_id="ses_1", run_id="run_1").with_seq(i) for i, data in enumerate(payloads, 1)]


def render(payloads: Sequence[EventData], *, color: bool = False) -> str:
    renderer = CompactRenderer(color=color)
    return "".join(renderer.render(event) for event in events(*payloads)) + renderer.finish()


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[str, Event | None]] = []
        self.closed = 0

    async def write(self, text: str, event: Event | None) -> None:
        self.writes.append((text, event))

    async def aclose(self) -> None:
        self.closed += 1


class FailsToClose(Recorder):
    async def aclose(self) -> None:
        await super().aclose()
        raise OSError("disk full")


# -- the compact renderer -------------------------------------------------------------------


def test_compact_renders_a_successful_run_with_tools_as_one_line() -> None:
    text = render(
        [
            SessionCreated("agent", "claude"),
            SessionStarted(),
            RunStarted("claude", "sonnet-4"),
            MessageSent("look at a.py"),
            ThinkingStreamed("the user wants"),
            MessageStreamed("Let me "),
            MessageStreamed("look."),
            ToolCallStarted("t1", "read", {"path": "a.py"}),
            ToolCallCompleted("t1", "read", "print(1)"),
            ToolCallStarted("t2", "bash", {"cmd": "pytest"}),
            ToolCallFailed("t2", "bash", "exit 1"),
            TurnCompleted(1),
            MessageStreamed("Done."),
            MessageReceived("Let me look.Done."),
            TokenUsageUpdated(TokenUsage(120, 45)),
            RunCompleted("end_turn", TokenUsage(120, 45)),
            SessionCompleted(),
        ]
    )

    assert text == "r+sonnet-4 >> Let me look. t+read t-read t+bash t!bash >> Done. tk:120/45 r-:end_turn\n"


def test_compact_names_the_provider_when_the_run_has_no_model() -> None:
    assert render([RunStarted("echo"), RunCompleted()]) == "r+echo r-\n"


def test_compact_renders_a_failed_run_once() -> None:
    text = render(
        [
            RunStarted("echo"),
            MessageStreamed("partial"),
            RunFailed("provider_rate_limited", "slow down", retryable=True),
            SessionFailed("provider_rate_limited", "slow down"),
        ]
    )

    assert text == "r+echo >> partial ! slow down\n"


def test_compact_renders_a_cancelled_run() -> None:
    assert render([RunStarted("echo"), RunCancelled("user"), SessionCompleted()]) == "r+echo ! cancelled\n"


def test_compact_renders_a_timed_out_run() -> None:
    assert render([RunStarted("echo"), RunTimeout(30.0)]) == "r+echo ! timeout\n"


def test_compact_renders_an_error_that_did_not_end_the_run() -> None:
    text = render([RunStarted("echo"), ErrorOccurred("provider_unavailable", "retrying"), RunCompleted("end_turn")])

    assert text == "r+echo ! retrying r-:end_turn\n"


def test_compact_marks_an_interrupted_attempt_and_its_restart() -> None:
    text = render([RunStarted("echo"), RunInterrupted(1, "worker w1 (host, pid 7)", "restart"), RunStarted("echo")])

    assert text == "r+echo ~interrupted r+echo\n"


def test_compact_marks_an_event_it_has_no_token_for() -> None:
    text = render([RunStarted("echo"), PolicyViolation("budget", "tokens", "warn")])

    assert text == "r+echo ?policy_violation\n"


def test_compact_paints_failures_red_when_asked() -> None:
    text = render([ToolCallFailed("t1", "bash", "exit 1"), RunFailed("provider_error", "boom")], color=True)

    assert text == "\x1b[31mt!bash\x1b[0m \x1b[31m! boom\x1b[0m\n"


def test_compact_renders_nothing_for_an_event_it_leaves_out() -> None:
    renderer = CompactRenderer()

    (event,) = events(SessionCreated("agent"))

    assert renderer.render(event) == ""


# -- JSONL sink -------------------------------------------------------------------------------


async def test_jsonl_sink_writes_lines_that_round_trip(tmp_path: Path) -> None:
    written = events(RunStarted("echo"), MessageStreamed("héllo\nworld"), RunCompleted("end_turn"))
    sink = JsonlSink(tmp_path / "events.jsonl")

    for event in written:
        await sink.write("ignored text", event)
    await sink.write("\n", None)  # the closing text has no event: not written
    await sink.aclose()

    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [event_from_json(line) for line in lines] == written


async def test_jsonl_sink_writes_to_a_stream() -> None:
    stream = io.StringIO()
    (event,) = events(MessageStreamed("hi"))

    sink = JsonlSink(stream)
    await sink.write(">> hi", event)
    await sink.aclose()

    assert event_from_json(stream.getvalue()) == event
    assert stream.getvalue().endswith("\n")


# -- file sink ------------------------------------------------------------------------------------


async def test_file_sink_appends_to_a_path(tmp_path: Path) -> None:
    path = tmp_path / "out" / "render.txt"
    first = FileSink(path)
    await first.write("one", None)
    await first.aclose()

    second = FileSink(path)
    await second.write(" two", None)
    await second.aclose()

    assert path.read_text(encoding="utf-8") == "one two"


async def test_file_sink_writes_to_a_stream_and_leaves_it_open() -> None:
    stream = io.StringIO()
    sink = FileSink(stream)

    await sink.write("r+echo", None)
    await sink.write("", None)
    await sink.aclose()

    assert stream.getvalue() == "r+echo"
    assert not stream.closed


async def test_file_sink_on_dash_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    sink = FileSink("-")

    await sink.write("to stdout", None)
    await sink.aclose()

    assert capsys.readouterr().out == "to stdout"


def test_file_sink_on_a_path_it_cannot_open_is_an_invalid_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")

    with pytest.raises(AsmError) as caught:
        FileSink(blocker / "render.txt")

    assert caught.value.code == "invalid_config"
    assert f"cannot open {blocker / 'render.txt'} for writing" in caught.value.message


async def test_closing_a_file_sink_twice_is_harmless(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "render.txt")
    await sink.write("x", None)

    await sink.aclose()
    await sink.aclose()

    assert (tmp_path / "render.txt").read_text(encoding="utf-8") == "x"


async def test_writing_to_a_closed_file_sink_is_an_error(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "render.txt")
    await sink.aclose()

    with pytest.raises(AsmError) as caught:
        await sink.write("late", None)

    assert caught.value.code == "invalid_operation"


# -- callback sink -------------------------------------------------------------------------------


async def test_callback_sink_calls_a_sync_callback() -> None:
    got: list[tuple[Event | None, str]] = []
    (event,) = events(MessageStreamed("hi"))

    sink = CallbackSink(lambda event, text: got.append((event, text)))
    await sink.write(">> hi", event)
    await sink.write("\n", None)
    await sink.aclose()

    assert got == [(event, ">> hi"), (None, "\n")]


async def test_callback_sink_awaits_an_async_callback() -> None:
    got: list[str] = []

    async def callback(event: Event | None, text: str) -> None:
        await trio.lowlevel.checkpoint()
        got.append(text)

    sink = CallbackSink(callback)
    await sink.write("r+echo", None)

    assert got == ["r+echo"]


def test_callback_sink_needs_a_callable() -> None:
    with pytest.raises(AsmError) as caught:
        CallbackSink("print")  # type: ignore[arg-type]

    assert caught.value.code == "invalid_config"
    assert "needs a callable" in caught.value.message


# -- the pipeline ---------------------------------------------------------------------------------


async def test_the_pipeline_renders_a_real_run_to_every_sink() -> None:
    stream = io.StringIO()
    recorder = Recorder()
    manager = SessionManager(InMemorySessionStore(), provider=EchoProvider())

    async with RenderingPipeline(CompactRenderer(), [FileSink(stream), recorder]) as pipeline:
        run = await manager.run_once("hello world", on_event=pipeline)

    assert stream.getvalue() == "r+echo >> hello world tk:3/3 $0 r-:end_turn\n"
    stored = (await manager.store.read_events(run.session_id)).events
    assert [event for _, event in recorder.writes] == [*stored, None]
    assert recorder.writes[-1] == ("\n", None)
    assert recorder.closed == 1


async def test_the_pipeline_closes_every_sink_even_when_one_fails_to_close() -> None:
    first, failing, last = Recorder(), FailsToClose(), Recorder()
    pipeline = RenderingPipeline(CompactRenderer(), [first, failing, last])

    with pytest.raises(OSError, match="disk full"):
        await pipeline.aclose()

    assert (first.closed, failing.closed, last.closed) == (1, 1, 1)
    assert last.writes == [("\n", None)]


async def test_the_pipeline_gives_the_closing_text_to_every_sink_even_when_one_fails() -> None:
    class FailsToWrite(Recorder):
        async def write(self, text: str, event: Event | None) -> None:
            raise OSError("pipe closed")

    failing, last = FailsToWrite(), Recorder()
    pipeline = RenderingPipeline(CompactRenderer(), [failing, last])

    with pytest.raises(OSError, match="pipe closed"):
        await pipeline.aclose()

    assert last.writes == [("\n", None)]
    assert (failing.closed, last.closed) == (1, 1)


async def test_the_pipeline_closes_its_sinks_when_the_renderer_fails_to_finish() -> None:
    class Unfinished(CompactRenderer):
        def finish(self) -> str:
            raise ValueError("renderer bug")

    recorder = Recorder()

    with pytest.raises(ValueError, match="renderer bug"):
        await RenderingPipeline(Unfinished(), [recorder]).aclose()

    assert recorder.closed == 1


async def test_closing_the_pipeline_twice_closes_the_sinks_once() -> None:
    recorder = Recorder()
    pipeline = RenderingPipeline(CompactRenderer(), [recorder])

    await pipeline.aclose()
    await pipeline.aclose()

    assert recorder.closed == 1
    assert recorder.writes == [("\n", None)]


async def test_the_pipeline_closes_its_sinks_when_the_run_is_cancelled() -> None:
    recorder = Recorder()
    manager = SessionManager(InMemorySessionStore(), provider=EchoProvider(delay=60))

    with trio.move_on_after(0):
        async with RenderingPipeline(CompactRenderer(), [recorder]) as pipeline:
            await manager.run_once("never finishes", on_event=pipeline)

    assert recorder.closed == 1
    assert recorder.writes[-1] == ("\n", None)
