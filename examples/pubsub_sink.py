"""Pub/sub fan-out: every stored event on ``asm.session.<id>``.

In one process, ``asm.InProcessBroker`` with ``asm.PubSubSink`` in the
rendering pipeline. Across processes, asm-redis: the ``RedisSink`` publishes
to the Redis server on 127.0.0.1:6379 and ``python -m asm_redis watch`` follows
the session from another process.
"""

from __future__ import annotations

import sys
from functools import partial
from subprocess import PIPE

import trio

import asm
from asm.rendering import CompactRenderer, RenderingPipeline
from asm.serde import event_from_json


async def in_process() -> None:
    broker = asm.InProcessBroker()
    pipeline = RenderingPipeline(CompactRenderer(), [asm.PubSubSink(broker)])
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=asm.EchoProvider(), on_event=pipeline)
    session = await manager.start_session()
    async with broker.subscribe(asm.session_topic(session.id)) as events:
        await manager.activate_session(session.id)
        run = await manager.start_run(session.id, "hello pub/sub")
        await manager.execute_run(run.id)
        async for event in events:
            print(f"  in-process subscriber: {event.seq} {event.type.value}")
            if event.type == "run_completed":
                break
    await pipeline.aclose()


async def across_processes() -> None:
    import asm_redis

    sink = asm_redis.RedisSink("redis://127.0.0.1:6379/0")
    manager = asm.SessionManager(
        asm.InMemorySessionStore(), provider=asm.ScriptedProvider(["a", "b"]), on_event=lambda e: sink.write("", e)
    )
    session = await manager.start_session()
    await manager.activate_session(session.id)
    command = [sys.executable, "-m", "asm_redis", "watch", session.id]
    received: list[asm.Event] = []
    async with trio.open_nursery() as nursery:
        watcher = await nursery.start(partial(trio.run_process, command, stdout=PIPE, stderr=PIPE, check=False))
        ready = b""
        while b"\n" not in ready:  # "subscribed to asm.session.<id>" on stderr
            ready += await watcher.stderr.receive_some()
        run = await manager.start_run(session.id, "go")
        await manager.execute_run(run.id)
        output = b""
        while not received or received[-1].type != "run_completed":
            output += await watcher.stdout.receive_some()
            *lines, rest = output.split(b"\n")
            received += [event_from_json(line) for line in lines]
            output = rest
        nursery.cancel_scope.cancel()  # stops the watcher process
    await sink.aclose()
    print(f"  the other process got {len(received)} events: {', '.join(e.type.value for e in received)}")
    stored = await manager.store.read_events(session.id, after=2)
    assert received == list(stored.events)


async def main() -> None:
    print("in one process:")
    await in_process()
    print("across processes, through Redis:")
    await across_processes()


if __name__ == "__main__":
    trio.run(main)
