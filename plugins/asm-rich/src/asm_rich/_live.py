"""A renderer behind a bounded buffer: watching a run never slows it.

The view's ``on_event`` callback only puts the event in a buffer and returns. A task of its
own takes what piled up at most once a frame (``frame_interval``), renders it and writes it
to the sinks (the terminal sink writes in a worker thread). While the terminal is slower than
the provider, consecutive text deltas of one run are joined into one (``coalesced``); past
``capacity`` waiting events, others are left out of the view and counted (``dropped``), with
a line saying how many. The stored events are never touched: this is only what is shown.

A sink that fails with ``BrokenPipeError`` or ``OSError`` (the reader left, the terminal was
closed) is written to no more; the run goes on, and ``output_lost`` says so afterwards.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import attrs
import trio

from asm.events import ApprovalRequested, Event, MessageStreamed, ThinkingStreamed
from asm.ports import Renderer, Sink

__all__ = ["CoalescingBuffer", "LiveView", "ViewStatistics", "open_live_view"]

#: How long a frame lasts: the view writes at most this often (seconds).
FRAME_INTERVAL: Final = 0.05
#: How many events (after coalescing) may wait for the next frame.
CAPACITY: Final = 1024
#: How often a renderer with a ``refresh()`` is redrawn while nothing happens (spinners).
TICK: Final = 0.1


@attrs.frozen
class ViewStatistics:
    """What a view did: events received, shown after coalescing, joined into another,
    left out at capacity, still waiting; frames written; whether its output was lost."""

    received: int
    rendered: int
    coalesced: int
    dropped: int
    pending: int
    frames: int
    output_lost: bool


class CoalescingBuffer:
    """Events waiting for the next frame; :meth:`put` never waits.

    >>> from asm.events import Event, MessageStreamed
    >>> buffer = CoalescingBuffer()
    >>> for delta in ("Hel", "lo"):
    ...     buffer.put(Event.new(MessageStreamed(delta), session_id="s"))
    >>> [e.data.delta for e in buffer.take()]
    ['Hello']
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: list[tuple[Event, list[str] | None]] = []
        self.received = 0
        self.coalesced = 0
        self.dropped = 0
        self._dropped_unreported = 0
        # The text delta waiting last: what a next delta must match to be joined to it.
        self._last_key: tuple[type, str | None, str | None] | None = None
        self._last_pieces: list[str] = []

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Event) -> None:
        """Add ``event``: joined to the text delta before it when it continues it (same
        type, run and stream), left out (and counted) when ``capacity`` events already wait."""
        self.received += 1
        data = event.data
        cls = data.__class__
        if cls is MessageStreamed or cls is ThinkingStreamed:
            key = (cls, event.run_id, getattr(data, "stream", None))
            if key == self._last_key:
                self._last_pieces.append(data.delta)  # type: ignore[attr-defined]
                self.coalesced += 1
                return
            if len(self._items) >= self.capacity:
                self._drop()
                return
            if not self._items:
                self._first()
            pieces = [data.delta]  # type: ignore[attr-defined]
            self._items.append((event, pieces))
            self._last_key, self._last_pieces = key, pieces
            return
        if len(self._items) >= self.capacity:
            self._drop()
            return
        if not self._items:
            self._first()
        self._items.append((event, None))
        self._last_key = None

    def _first(self) -> None:
        """Called when an event comes to an empty buffer (a view wakes its frame task)."""

    def _drop(self) -> None:
        self.dropped += 1
        self._dropped_unreported += 1

    def take(self) -> tuple[list[Event], int]:
        """Everything waiting (joined deltas as one event each), and how many events were
        left out since the last take."""
        items, self._items = self._items, []
        self._last_key = None
        dropped, self._dropped_unreported = self._dropped_unreported, 0
        events = []
        for event, pieces in items:
            if pieces is not None and len(pieces) > 1:
                data = event.data
                assert isinstance(data, MessageStreamed | ThinkingStreamed)
                event = attrs.evolve(event, data=attrs.evolve(data, delta="".join(pieces)))
            events.append(event)
        return events, dropped


class LiveView(CoalescingBuffer):
    """The ``on_event`` callback of :func:`open_live_view`: a :class:`CoalescingBuffer`
    whose frame task renders and writes what it holds."""

    def __init__(
        self,
        renderer: Renderer,
        sinks: Sequence[Sink],
        *,
        capacity: int = CAPACITY,
        frame_interval: float = FRAME_INTERVAL,
    ) -> None:
        self.renderer = renderer
        self.sinks = list(sinks)
        self.frame_interval = frame_interval
        super().__init__(capacity)
        self._wakeup = trio.Event()
        self._asking = trio.Lock()
        self._approvals_shown: set[str] = set()  # tool calls whose approval_requested was shown
        self._shown = trio.Event()
        self._rendered = 0
        self._frames = 0
        self._lost = False
        self._unwritten: tuple[str, Event | None, int] | None = None
        self._refresh = getattr(renderer, "refresh", None)
        # A renderer that can render a frame's events at once (the studio: one redraw a frame).
        self._render_all = getattr(renderer, "render_all", None)
        self._note = getattr(renderer, "note", None)

    #: Take an event for the next frame (never waits): the buffer's ``put``, called directly
    #: (one Python call per event is all a run pays).
    __call__ = CoalescingBuffer.put

    def _first(self) -> None:
        self._wakeup.set()

    @property
    def output_lost(self) -> bool:
        """Whether a sink failed (the reader left): nothing was shown after that."""
        return self._lost

    def statistics(self) -> ViewStatistics:
        """What the view did so far."""
        return ViewStatistics(
            received=self.received,
            rendered=self._rendered,
            coalesced=self.coalesced,
            dropped=self.dropped,
            pending=len(self),
            frames=self._frames,
            output_lost=self._lost,
        )

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write frames until cancelled."""
        task_status.started()
        while True:
            if not len(self):
                with trio.move_on_after(TICK if self._refresh is not None else math.inf):
                    await self._wakeup.wait()
            self._wakeup = trio.Event()
            async with self._asking:  # no frame while a question waits for its answer
                await self.frame()
            await trio.sleep(self.frame_interval)

    async def ask_approval(self, request: ApprovalRequested, question: str) -> str:
        """Ask whether the tool call of ``request`` may run, once its ``approval_requested``
        event has been shown: :meth:`prompt` ``question`` under it."""
        while request.tool_call_id not in self._approvals_shown:  # frames go on meanwhile
            await self._shown.wait()
        return await self.prompt(question)

    async def prompt(self, question: str, read: Callable[[], str] | None = None) -> str:
        """Ask the person at the terminal ``question`` and return the line they type
        (``read``, default: a line of stdin, in a worker thread). What waits is shown
        first, the renderer's moving part is cleared (``suspend()``), and no frame is
        written until the answer; the run goes on meanwhile (its events wait in the buffer)."""
        async with self._asking:
            await self.frame()
            suspend = getattr(self.renderer, "suspend", None)
            await self._write((suspend() if suspend is not None else "") + question, None)
            return await trio.to_thread.run_sync(read or sys.stdin.readline, abandon_on_cancel=True)

    async def frame(self) -> None:
        """Render what waits (or, with nothing new, redraw the renderer's moving parts) and write it."""
        events, dropped = self.take()
        if self._render_all is not None:
            pieces = [self._render_all(events)] if events else []
        else:
            pieces = [self.renderer.render(event) for event in events]
        if dropped and self._note is not None:
            pieces.append(self._note(f"… {dropped:,} events not shown (the terminal fell behind; all are stored)"))
        if not events and self._refresh is not None:
            pieces.append(self._refresh())
        self._rendered += len(events)
        text = "".join(pieces)
        if text:
            await self._write(text, events[-1] if events else None)
        asked = [e.data.tool_call_id for e in events if isinstance(e.data, ApprovalRequested)]
        if asked:
            self._approvals_shown.update(asked)
            self._shown.set()
            self._shown = trio.Event()

    async def close(self) -> None:
        """The last frame and the renderer's closing text; then close the sinks."""
        with trio.CancelScope(shield=True):
            if not self._lost:
                await self._flush_unwritten()
            await self.frame()
            await self._write(self.renderer.finish(), None)
            for sink in self.sinks:
                with contextlib.suppress(BrokenPipeError, OSError):
                    await sink.aclose()

    async def _write(self, text: str, event: Event | None) -> None:
        if not text or self._lost:
            return
        self._frames += 1
        # Until every sink has it, the frame is kept: a frame cancelled before its write
        # (the block ended) is written by close().
        self._unwritten = (text, event, 0)
        await self._flush_unwritten()

    async def _flush_unwritten(self) -> None:
        if self._unwritten is None:
            return
        text, event, start = self._unwritten
        for index in range(start, len(self.sinks)):
            self._unwritten = (text, event, index)
            try:
                await self.sinks[index].write(text, event)
            except (BrokenPipeError, OSError):  # the reader left or the terminal closed: the run goes on
                self._lost = True
                break
        self._unwritten = None


@contextlib.asynccontextmanager
async def open_live_view(
    renderer: Renderer,
    sinks: Sequence[Sink],
    *,
    capacity: int = CAPACITY,
    frame_interval: float = FRAME_INTERVAL,
) -> AsyncIterator[LiveView]:
    """Show events through ``renderer`` on ``sinks`` behind a bounded buffer; yields the
    ``on_event`` callback. Leaving the block writes what still waits and the renderer's
    closing text, and closes the sinks.

    >>> async with open_live_view(VerboseRenderer(), [ConsoleSink()]) as show:  # doctest: +SKIP
    ...     await manager.run_once("hi", on_event=show)
    """
    view = LiveView(renderer, sinks, capacity=capacity, frame_interval=frame_interval)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(view.serve)
            try:
                yield view
            finally:
                nursery.cancel_scope.cancel()
    finally:  # once the frame task has stopped: no two writes at once
        await view.close()
