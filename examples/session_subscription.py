"""Durable subscriptions: stored events after a cursor, then live ones.

A subscriber that starts late still sees everything (it reads the store first);
one that reads slowly never holds the run back (it catches up from the store);
a cursor lets a consumer resume exactly where it stopped.
"""

from __future__ import annotations

import trio

import asm
from asm.events import MessageStreamed


async def main() -> None:
    store = asm.InMemorySessionStore()
    provider = asm.ScriptedProvider([f"chunk{i} " for i in range(20)])

    async with asm.open_session_server(store, provider) as server:
        first = await server.wait(await server.submit("first"))

        # Late subscriber: the stored events of the first run, then the second run live.
        async with server.subscribe(after=0, types=["run_started", "run_completed"]) as events:
            second = await server.submit("second")
            seen = []
            async for event in events:
                seen.append((event.seq, event.type.value, event.run_id))
                if event.type == "run_completed" and event.run_id == second:
                    break
        for seq, kind, run_id in seen:
            print(f"  seq {seq:3} {kind:14} {'first' if run_id == first.id else 'second'}")
        assert [kind for _, kind, _ in seen] == ["run_started", "run_completed"] * 2

        # A slow subscriber with a tiny buffer: the run does not wait for it, and it loses nothing.
        async with server.subscribe(after=events.cursor, buffer=2, types=["message_streamed"]) as slow:
            third = await server.wait(await server.submit("third"))
            assert third.status is asm.RunStatus.COMPLETED  # finished while nobody read
            text = ""
            async for event in slow:
                assert isinstance(event.data, MessageStreamed)
                text += event.data.delta
                if text.count("chunk") == 20:
                    break
        print(f"slow subscriber: {text.count('chunk')} chunks, caught up from the store {slow.catch_ups}x")

    # The same on any session of a manager or runtime (here, the first run only):
    async with asm.open_subscription(server.manager, server.session_id, run_id=first.id) as events:
        async for event in events:
            if event.type == "run_completed":
                print("run_completed of the first run at seq", event.seq)
                break


if __name__ == "__main__":
    trio.run(main)
