"""The Sink contract suite (see :mod:`asm.testing`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import pytest

from asm.events import Event, MessageStreamed, RunCompleted, SessionCreated
from asm.manager import SessionManager
from asm.ports import Sink
from asm.providers.scripted import EchoProvider
from asm.rendering import CompactRenderer, RenderingPipeline
from asm.states import RunStatus
from asm.stores.memory import InMemorySessionStore
from asm.testing._common import background_tasks, guard, unique

__all__ = ["SinkContract"]

#: Text that must arrive unchanged: accents, CJK, an emoji, tabs, CRLF, a NUL-free control mix.
AWKWARD_TEXT = "héllo wörld\t日本語 ✓ 🙂\r\nline two\n"


def _events(session_id: str, count: int) -> list[Event]:
    parts = (MessageStreamed(f"part {i} ") for i in range(count))
    payloads = [SessionCreated(agent_id="sink-contract"), *parts, RunCompleted()]
    return [Event.new(data, session_id=session_id).with_seq(seq) for seq, data in enumerate(payloads, 1)]


class SinkContract:
    """Behavioural contract of :class:`asm.ports.Sink`.

    Subclass it and supply two fixtures: ``sink``, a fresh sink, and
    ``sink_output``, a callable returning everything that has reached that
    sink's destination so far, as one string (read the file back, join what a
    fake server received). The suite writes to the sink the way a runtime does,
    through :class:`~asm.rendering.RenderingPipeline` on a real
    :class:`~asm.manager.SessionManager`, and reads the destination after
    ``aclose``. See :mod:`asm.testing` for the flags.
    """

    pytestmark = pytest.mark.trio

    #: The destination receives the rendered text itself, exactly and in order
    #: (a file, a terminal, a chat channel). ``False``: it receives one record
    #: per event (JSON lines, a queue of events); the suite then checks that
    #: each event's id reaches it, in seq order, and ignores the text.
    delivers_text: ClassVar[bool] = True

    #: Seconds the suite waits for something that should happen at once before
    #: failing instead of hanging (a guard, never a performance bound).
    wait_limit: ClassVar[float] = 30.0

    def _check_delivered(self, output: str, events: Sequence[Event], text: str, doing: str) -> None:
        if self.delivers_text:
            assert output == text, f"{doing}: the destination received {output!r}, not the rendered text {text!r}"
            return
        position = -1
        for event in events:
            found = output.find(event.id, position + 1)
            assert found >= 0, f"{doing}: event {event.seq} ({event.type.value}, id {event.id}) never arrived"
            assert found > position, f"{doing}: event {event.seq} ({event.id}) arrived before the one ahead of it"
            position = found

    async def test_a_run_s_events_reach_the_destination_in_order(
        self, sink: Sink, sink_output: Callable[[], str]
    ) -> None:
        """Every event of a run, as a runtime hands it over (rendered, after the
        store acknowledged it, in seq order), then the closing text, is at the
        destination once the sink is closed. A failure: the sink loses, reorders
        or alters what it is given, or keeps some of it in a buffer ``aclose``
        does not flush."""
        store = InMemorySessionStore()
        pipeline = RenderingPipeline(CompactRenderer(), [sink])
        manager = SessionManager(store, provider=EchoProvider(), on_event=pipeline)
        with guard(self.wait_limit, "a run whose events go to the sink"):
            run = await manager.run_once("hello sink, four words")
            await pipeline.aclose()
        assert run.status is RunStatus.COMPLETED, f"the run ended {run.status.value}: {run.error}"
        events = (await store.read_events(run.session_id)).events
        replay = CompactRenderer()
        text = "".join(replay.render(event) for event in events) + replay.finish()
        self._check_delivered(sink_output(), events, text, "a run through RenderingPipeline")

    async def test_empty_text_and_the_closing_text(self, sink: Sink, sink_output: Callable[[], str]) -> None:
        """An event the renderer leaves out comes with ``""``; the renderer's
        closing text comes with ``event=None``, once, after the last event.
        A failure: the sink refuses one of them, writes something for ``""``, or
        loses the closing text (text sinks) or an event (record sinks)."""
        events = _events(unique("ses"), 2)
        texts = ["", "first ", "second"]
        with guard(self.wait_limit, "writing and closing the sink"):
            for event, text in zip(events, [*texts, ""], strict=True):
                await sink.write(text, event)
            await sink.write("\nthe end\n", None)
            await sink.aclose()
        self._check_delivered(sink_output(), events, "first second\nthe end\n", "writes with '' and a closing text")

    async def test_text_arrives_unchanged(self, sink: Sink, sink_output: Callable[[], str]) -> None:
        """Non-ASCII text, tabs, CR/LF and a large write (256 KiB) arrive byte
        for byte. A failure: the sink re-encodes (not UTF-8), translates line
        endings, truncates or drops a write."""
        big = "0123456789abcdef" * (16 * 1024)
        event = Event.new(MessageStreamed(AWKWARD_TEXT), session_id=unique("ses")).with_seq(1)
        large = Event.new(MessageStreamed(big), session_id=event.session_id).with_seq(2)
        with guard(self.wait_limit, "writing awkward and large text"):
            await sink.write(AWKWARD_TEXT, event)
            await sink.write(big, large)
            await sink.aclose()
        self._check_delivered(sink_output(), [event, large], AWKWARD_TEXT + big, "non-ASCII and large writes")

    async def test_closing_twice_is_harmless(self, sink: Sink, sink_output: Callable[[], str]) -> None:
        """``aclose`` a second time neither raises nor writes anything (a
        runtime's error paths may close what a pipeline closed). A failure: the
        second close raises or duplicates buffered output."""
        event = Event.new(MessageStreamed("once"), session_id=unique("ses")).with_seq(1)
        with guard(self.wait_limit, "closing the sink twice"):
            await sink.write("once", event)
            await sink.aclose()
            await sink.aclose()
        self._check_delivered(sink_output(), [event], "once", "closing twice")

    async def test_leaves_no_task_behind(self, sink: Sink, sink_output: Callable[[], str]) -> None:
        """A sink may run tasks of its own (a sender to a slow server), but
        ``aclose`` ends them all. A failure: a system task the sink spawned
        outlives it."""
        before = background_tasks()
        events = _events(unique("ses"), 3)
        with guard(self.wait_limit, "writing and closing the sink"):
            for event in events:
                await sink.write("x", event)
            await sink.aclose()
        left = background_tasks() - before
        assert not left, f"tasks left running after aclose: {sorted(task.name for task in left)}"
        self._check_delivered(sink_output(), events, "x" * len(events), "writes before aclose")
