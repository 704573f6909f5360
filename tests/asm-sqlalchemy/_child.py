"""A separate OS process for the multi-process tests (not a test module).

python _child.py append URL SESSION COUNT BATCH   append COUNT events, BATCH per call
python _child.py stream URL CHUNKS                one run streaming CHUNKS deltas; prints each
                                                  delivered event as "seq id" (flushed)
python _child.py stall URL                        a run that never ends; prints "running RUN SESSION"
python _child.py append-on-line URL SESSION       appends one event per line read from stdin
python _child.py execute URL RUN...               prints "ready", waits for a line on stdin, then
                                                  executes each run; prints "ran N refused M"
python _child.py stall-once URL PGID_FILE         run_once of a run that starts a child process
                                                  group and never ends; prints "running RUN SESSION"
"""

from __future__ import annotations

import sys

import trio
from asm_sqlalchemy import SqlAlchemyStore

from asm import AsmError, Event, SessionManager
from asm.events import MessageStreamed
from asm.model import RunInput, RunResult
from asm.ports import Emit
from asm.process import open_cli_process
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


async def execute(url: str, run_ids: list[str]) -> None:
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=ScriptedProvider(["ran"]))
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)
        ran = refused = 0
        for run_id in run_ids:
            try:
                await manager.execute_run(run_id)
            except AsmError as exc:
                assert exc.code == "invalid_operation", exc
                refused += 1
            else:
                ran += 1
    print("ran", ran, "refused", refused, flush=True)


class GroupStarter:
    """Starts ``sleep`` in a process group of its own, says so, and waits forever."""

    name = "group-starter"

    def __init__(self, pgid_file: str) -> None:
        self.pgid_file = pgid_file

    def capabilities(self) -> object:
        from asm import Capabilities

        return Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        async with open_cli_process(["sleep", "300"], provider=self.name) as proc:
            await trio.Path(self.pgid_file).write_text(str(proc.pid))
            await emit(MessageStreamed("started"))
            await trio.sleep_forever()
        raise AssertionError("unreachable")


async def stall_once(url: str, pgid_file: str) -> None:
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=GroupStarter(pgid_file))  # type: ignore[arg-type]

        def started(event: Event) -> None:
            if isinstance(event.data, MessageStreamed):
                print("running", event.run_id, event.session_id, flush=True)

        await manager.run_once("wait forever", on_event=started)


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
    elif command == "execute":
        trio.run(execute, url, rest)
    elif command == "stall-once":
        trio.run(stall_once, url, rest[0])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
