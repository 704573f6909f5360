"""A run executing in a real ``asm worker`` process, followed from the client through
Redis pub/sub (asm-redis's ``[sinks.redis]`` in the config the client and the worker
share), with real PostgreSQL, RabbitMQ and Redis. A service that cannot be reached
fails the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kombu
import psycopg
import pytest
import trio
from asm_redis import RedisPubSub

import asm
from asm.events import RUN_END_TYPES, EventType

PG = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"
WAIT = 120.0


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An asm.toml on a database and a queue of this test's own (both removed after it)."""
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "asm-sqlalchemy,asm-celery,asm-redis")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    database, queue = f"asm_redis_{uuid.uuid4().hex[:12]}", f"asm.test.{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); this test needs it running")
    path = tmp_path / "asm.toml"
    path.write_text(
        "\n".join(
            [
                'provider = "scripted"',
                'store = "sqlalchemy"',
                "[stores.sqlalchemy]",
                f'url = "postgresql+psycopg://postgres@127.0.0.1:5432/{database}"',
                "[providers.scripted]",
                f"chunks = {[f'c{i} ' for i in range(20)]!r}",
                "delay = 0.02",
                "[sinks.redis]",
                f'url = "{REDIS}"',
                "[server]",
                'backend = "celery"',
                "[celery]",
                f'broker_url = "{BROKER}"',
                f'queue = "{queue}"',
            ]
        )
        + "\n"
    )
    try:
        yield path
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        with kombu.Connection(BROKER, connect_timeout=5) as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.close()


@pytest.fixture
def worker(config: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One ``asm worker`` process, ready; SIGKILLed after the test if still running."""
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from asm.cli import main; main()", "worker", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WAIT
        while "ready (pid" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


async def test_the_client_follows_a_run_on_a_worker_through_redis(
    config: Path, worker: subprocess.Popen[bytes]
) -> None:
    async with asm.open_runtime(config_file=config) as rt, asm.open_session_server(rt) as server:
        assert isinstance(server.follow, RedisPubSub)  # the client follows Redis, not the store
        published: list[asm.Event] = []
        seen: list[asm.Event] = []
        async with (
            RedisPubSub(REDIS) as redis,
            redis.subscribe(asm.session_topic(server.session_id)) as on_redis,
            server.subscribe(after=0) as events,
            trio.open_nursery() as nursery,
        ):

            async def watch_redis() -> None:
                async for event in on_redis:
                    published.append(event)

            nursery.start_soon(watch_redis)
            run_id = await server.submit("follow me through redis")
            with trio.fail_after(WAIT):
                async for event in events:
                    seen.append(event)
                    if event.run_id == run_id and event.type in RUN_END_TYPES:
                        break
            nursery.cancel_scope.cancel()
        stored = list((await rt.store.read_events(server.session_id)).events)
        assert seen == stored  # every event, in seq order, no gap, no duplicate
        mine = [e.type for e in seen if e.run_id == run_id]
        assert mine[:2] == [EventType.RUN_QUEUED, EventType.RUN_STARTED] and mine[-1] is EventType.RUN_COMPLETED
        assert mine.count(EventType.MESSAGE_STREAMED) == 20
        # The worker published what it stored on Redis (and the client its run_queued).
        run_events = [e for e in published if e.run_id == run_id]
        assert [e.seq for e in run_events] == [e.seq for e in seen if e.run_id == run_id]
        assert (await server.wait(run_id)).status is asm.RunStatus.COMPLETED
