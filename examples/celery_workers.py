"""Runs executed by Celery workers (asm-celery), offline against the local
RabbitMQ (127.0.0.1:5672, guest) and PostgreSQL (127.0.0.1:5432, user postgres).

The example starts two ``asm worker`` processes, opens two session servers on a
runtime whose config says ``[server] backend = "celery"`` (the same code as with
the in-process server), submits runs, follows one session live as the workers
store its events, waits for every run, cancels one while it is queued, and stops
the workers with SIGTERM. It uses a database and a queue of its own and removes
both at the end. ``ASM_EXAMPLE_PG`` (a libpq DSN of the admin database) and
``ASM_EXAMPLE_BROKER`` point it elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import kombu
import psycopg
import trio

import asm
from asm.events import RUN_END_TYPES, EventType

DSN = os.environ.get("ASM_EXAMPLE_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
BROKER = os.environ.get("ASM_EXAMPLE_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

CONFIG = """\
provider = "scripted"
store = "sqlalchemy"

[stores.sqlalchemy]
url = "{url}"

[providers.scripted]
chunks = ["Hello", ", ", "from ", "a ", "worker", "."]
delay = 0.2

[server]
backend = "celery"

[celery]
broker_url = "{broker}"
queue = "{queue}"
concurrency = 2
lease_s = 6.0
"""


def start_worker(name: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``asm worker --name NAME`` in a process of its own; returns once it consumes."""
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-c", "from asm.cli import main; main()", "worker", "--name", name],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            env={**os.environ, "ASM_CONFIG": str(config)},
        )
    deadline = time.monotonic() + 60
    while "ready (pid" not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {name} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return worker


async def main(config: Path, worker_pids: dict[int, str]) -> None:
    async with (
        asm.open_runtime(config_file=config) as rt,
        asm.open_session_server(rt, agent_id="writer") as writer,
        asm.open_session_server(rt, agent_id="reviewer") as reviewer,
    ):
        print(f"client: {type(writer).__name__} (config [server] backend = celery)")

        # 1. Follow the writer's session live while the workers execute its runs.
        async with writer.subscribe(after=0) as events:
            first = await writer.submit("draft the release notes")
            second = await writer.submit("shorten them")  # runs after the first: per-session FIFO
            reviews = [await reviewer.submit(f"review part {i}") for i in range(3)]
            ended = set()
            with trio.fail_after(60):
                async for event in events:
                    if event.type is not EventType.MESSAGE_STREAMED:
                        print(f"  seq {event.seq:>2} {event.type.value:<16} {event.run_id}")
                    if event.type in RUN_END_TYPES:
                        ended.add(event.run_id)
                        if ended == {first, second}:
                            break

        # 2. Every run ended once, on one of the two workers.
        for run_id in (first, second, *reviews):
            run = await (writer if run_id in (first, second) else reviewer).wait(run_id, timeout=60)
            assert run.status is asm.RunStatus.COMPLETED, run
            assert run.output == "Hello, from a worker."
            assert run.owner is not None and run.owner.process.pid in worker_pids
            print(f"{run_id}: {run.output!r} by {worker_pids[run.owner.process.pid]}")
        log = (await rt.store.read_events(writer.session_id)).events
        starts = [e.run_id for e in log if e.type is EventType.RUN_STARTED]
        assert starts == [first, second], starts  # submit order, each started once

        # 3. A queued run is cancelled without ever executing.
        busy = await reviewer.submit("a long review")
        queued = await reviewer.submit("never needed")
        async with reviewer.subscribe(run_id=busy, types=["message_streamed"]) as streamed:
            await anext(streamed)  # the run before it is executing: this one waits its turn (~1 s)
        cancelled = await reviewer.cancel(queued, reason="not needed")
        assert cancelled.status is asm.RunStatus.CANCELLED
        mine = [e.type for e in (await rt.store.read_events(reviewer.session_id, run_id=queued)).events]
        assert mine == [EventType.RUN_QUEUED, EventType.RUN_CANCELLED]
        print(f"{queued}: cancelled while queued ({' -> '.join(t.value for t in mine)})")
        await reviewer.drain(timeout=60)
        assert (await reviewer.wait(busy)).status is asm.RunStatus.COMPLETED


def run() -> None:
    database = f"asm_example_{uuid.uuid4().hex[:10]}"
    queue = f"asm.example.{uuid.uuid4().hex[:10]}"
    params = psycopg.conninfo.conninfo_to_dict(DSN)
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432)
    url = f"postgresql+psycopg://{user}@{host}:{port}/{database}"
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "asm.toml"
            config.write_text(CONFIG.format(url=url, broker=BROKER, queue=queue))
            for name in ("worker-a", "worker-b"):
                workers.append(start_worker(name, config, Path(tmp) / f"{name}.log"))
            trio.run(main, config, {w.pid: name for w, name in zip(workers, ("worker-a", "worker-b"), strict=True)})
            for worker in workers:  # SIGTERM: stop claiming, let runs finish, exit
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=60) == 0
            print("both workers stopped with SIGTERM (exit status 0)")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        with kombu.Connection(BROKER) as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.close()


if __name__ == "__main__":
    run()
