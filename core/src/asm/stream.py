"""``stream_session``: one run as an async iterator of its events.

::

    async with asm.stream_session(provider=EchoProvider(), input="hi") as events:
        async for event in events:
            print(event.type, event.seq)

The iterator yields every event of the session (as stored) and ends after the
session's terminal event. Leaving the block early cancels the run (it is
recorded as cancelled) and leaves nothing running. A failed run does not
raise: its ``run_failed`` event is in the stream, and ``events.run`` holds the
final :class:`~asm.model.Run` once the stream has ended.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio

from asm._trio import single_errors
from asm.events import Event
from asm.manager import SessionManager
from asm.model import Run, RunInput
from asm.ports import Provider, SessionStore
from asm.stores.memory import InMemorySessionStore

__all__ = ["EventStream", "stream_session"]


class EventStream:
    """The async iterator ``stream_session`` yields; ``run`` is set once the run has ended."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        self._receive = receive
        self.run: Run | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None


@contextlib.asynccontextmanager
async def stream_session(
    *,
    provider: Provider,
    input: object,
    store: SessionStore | None = None,
    manager: SessionManager | None = None,
    agent_id: str | None = None,
    timeout: float | None = None,
    options: Mapping[str, Any] | None = None,
    buffer: int = 256,
) -> AsyncIterator[EventStream]:
    """Run ``input`` on ``provider`` in a new session and stream its events.

    Uses ``manager`` if given, else a manager on ``store`` (default: a new
    in-memory store). ``buffer`` events may wait for the consumer before the
    run is held back (backpressure, never loss).
    """
    run_input = RunInput.coerce(input, options=options)  # bad input fails here, before anything starts
    if manager is None:
        manager = SessionManager(store or InMemorySessionStore(), provider=provider)
    send, receive = trio.open_memory_channel[Event](buffer)
    stream = EventStream(receive)

    async def forward(event: Event) -> None:
        # If the consumer left, the events are stored all the same.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send.send(event)

    async def produce() -> None:
        async with send:
            stream.run = await manager.run_once(
                run_input, provider=provider, agent_id=agent_id, on_event=forward, timeout=timeout
            )

    with single_errors():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            try:
                yield stream
            finally:
                # Left early (or finished): stop the run; run_once records it as cancelled.
                receive.close()
                nursery.cancel_scope.cancel()
