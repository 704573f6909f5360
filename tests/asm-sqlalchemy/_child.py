"""A separate OS process for the multi-process tests (not a test module).

python _child.py append URL SESSION COUNT BATCH   append COUNT events, BATCH per call
python _child.py stream URL CHUNKS                one run streaming CHUNKS deltas; prints each
                                                  delivered event as "seq id" (flushed)
python _child.py stall URL                        a run that never ends; prints "running RUN SESSION"
python _child.py append-on-line URL SESSION       appends one event per line read from stdin
"""

from __future__ import annotations

import sys

import trio
from asm_sqlalchemy import SqlAlchemyStore

from asm import Event, SessionManager
from asm.events import MessageStreamed
from asm.providers.scripted import ScriptedProvider, Stall


async def append(url: str, session_id: str, count: int, batch: int) -> None:
    async with SqlAlchemyStore(url) as store:
        done = 0
        while done < count:
            size = min(batch, count - done)
            events = [Event.new(MessageStreamed(f"{done + i}"), session_id=session_id) for i in range(size)]
            await store.append_events(events)
            done += size
    print("done", flush=True)


async def stream(url: str, chunks: int) -> None:
    out = sys.stdout

    def delivered(event: Event) -> None:
        out.write(f"{event.seq} {event.id}\n")
        out.flush()

    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=ScriptedProvider([f"c{i} " for i in range(chunks)]))
        await manager.run_once("stream", on_event=delivered)


async def stall(url: str) -> None:
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=ScriptedProvider(["started", Stall()]))
        session = await manager.start_session(agent_id="stall")
        await manager.activate_session(session.id)
        run = await manager.start_run(session.id, "wait forever")

        def started(event: Event) -> None:
            if isinstance(event.data, MessageStreamed):
                print("running", run.id, session.id, flush=True)

        await manager.execute_run(run.id, on_event=started)


async def append_on_line(url: str, session_id: str) -> None:
    async with SqlAlchemyStore(url) as store:
        print("ready", flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            stored = await store.append_events([Event.new(MessageStreamed(line.strip()), session_id=session_id)])
            print("appended", stored[0].seq, flush=True)


def main() -> None:
    command, url, *rest = sys.argv[1:]
    if command == "append":
        trio.run(append, url, rest[0], int(rest[1]), int(rest[2]))
    elif command == "stream":
        trio.run(stream, url, int(rest[0]))
    elif command == "stall":
        trio.run(stall, url)
    elif command == "append-on-line":
        trio.run(append_on_line, url, rest[0])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
