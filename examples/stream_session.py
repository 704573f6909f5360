"""Streaming a run's events as they are stored, and leaving a stream early.

``stream_session`` runs one prompt in a new session and yields its events; each
event has already been stored (it has its ``seq``) when you see it.
"""

from __future__ import annotations

import trio

import asm
from asm.events import MessageStreamed
from asm.providers.scripted import Delay, Stall


async def main() -> None:
    answer = "Structured concurrency means no task outlives the block that started it."
    # A small delay between chunks so the text visibly streams.
    provider = asm.ScriptedProvider.from_text(answer, chunk_size=8, delay=0.01)

    types: list[str] = []
    async with asm.stream_session(provider=provider, input="What is structured concurrency?") as events:
        async for event in events:
            types.append(event.type)
            if isinstance(event.data, MessageStreamed):
                print(event.data.delta, end="", flush=True)
    print()
    # The stream ends after the session's terminal event; events.run is the final Run.
    assert events.run is not None
    print(f"run {events.run.status.value}, {len(types)} events, last {types[-1]}")
    assert events.run.status is asm.RunStatus.COMPLETED and events.run.output == answer
    assert types[0] == "session_created" and types[-1] == "session_completed"

    # Leaving early: break out of the loop and the block cancels the run. Pass
    # a store to look at what was recorded afterwards.
    store = asm.InMemorySessionStore()
    endless = asm.ScriptedProvider(["one ", Delay(0.01), "two ", Stall()], name="endless")
    async with asm.stream_session(provider=endless, input="count forever", store=store) as events:
        async for event in events:
            if isinstance(event.data, MessageStreamed):
                print(f"got {event.data.delta!r}, leaving")
                break
    [session] = await store.list_sessions()
    [run] = await store.list_runs(session.id)
    print(f"left early: run {run.status.value}, session {session.status.value}")
    assert run.status is asm.RunStatus.CANCELLED
    assert session.status is asm.SessionStatus.CANCELLED
    # Nothing was lost: the log ends with the cancellation events.
    page = await store.read_events(session.id)
    assert [e.type.value for e in page.events][-2:] == ["run_cancelled", "session_cancelled"]


if __name__ == "__main__":
    trio.run(main)
