"""Real services and real ``asm worker`` processes.

Each test gets a database of its own on the PostgreSQL at 127.0.0.1:5432 and a
queue name of its own on the RabbitMQ at 127.0.0.1:5672 (both removed after
it). A service that cannot be reached fails the test: these tests never skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import kombu
import psycopg
import pytest
import trio

import asm

PG_HOST = os.environ.get("ASM_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("ASM_TEST_PG_USER", "postgres")
BROKER = os.environ.get("ASM_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")

#: Bound of every wait on a worker or the store (generous: the machine may be loaded).
WAIT = 120.0


def pg_admin() -> psycopg.Connection[tuple[Any, ...]]:
    try:
        return psycopg.connect(host=PG_HOST, port=5432, user=PG_USER, dbname="postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_HOST}:5432 is not reachable ({exc}); these tests need it running")


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``predicate`` (bounded) until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "asm-sqlalchemy,asm-celery")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database (its SQLAlchemy URL), dropped after the test."""
    name = f"asm_celery_{uuid.uuid4().hex[:12]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:5432/{name}"
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own, deleted after it."""
    name = f"asm.test.{uuid.uuid4().hex[:12]}"
    try:
        with kombu.Connection(BROKER, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"RabbitMQ at {BROKER} is not reachable ({exc!r}); these tests need it running")
    yield name
    with kombu.Connection(BROKER, connect_timeout=5) as conn:
        channel = conn.channel()
        channel.queue_delete(name)
        channel.close()


def queue_depth(name: str) -> int:
    """Messages ready in queue ``name`` (not counting those delivered and unacked)."""
    with kombu.Connection(BROKER, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            return int(channel.queue_declare(name, passive=True).message_count)
        finally:
            channel.close()


@attrs.define
class Config:
    """An asm.toml for a test: the scripted provider, its database and queue."""

    path: Path
    database: str
    queue: str

    def write(
        self,
        *,
        chunks: int = 3,
        delay: float = 0.0,
        broker: str = BROKER,
        store: str | None = None,
        max_parallel_runs: int = 1000,
        **celery: Any,
    ) -> Path:
        settings = {"queue": self.queue, "lease_s": 3.0, "claim_wait": 2.0, "grace_period": 30.0, **celery}
        lines = [
            'provider = "scripted"',
            'store = "sqlalchemy"',
            f"max_parallel_runs = {max_parallel_runs}",
            "[stores.sqlalchemy]",
            f'url = "{store or self.database}"',
            "[providers.scripted]",
            f"chunks = {[f'c{i} ' for i in range(chunks)]!r}",
            f"delay = {delay}",
            "[server]",
            'backend = "celery"',
            "[celery]",
            f'broker_url = "{broker}"',
            *(
                f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
                for key, value in settings.items()
            ),
        ]
        self.path.write_text("\n".join(lines) + "\n")
        return self.path


@pytest.fixture
def config(tmp_path: Path, database: str, queue: str) -> Config:
    return Config(tmp_path / "asm.toml", database, queue)


@attrs.define
class Worker:
    """One ``asm worker`` subprocess (its stderr in a file)."""

    process: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.name} exited with {self.process.returncode}:\n{self.output()}")
            return "ready (pid" in self.output()

        wait_until(ready, f"worker {self.name} to be ready")

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            os.kill(self.pid, signum)
        try:
            return self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"worker {self.name} did not stop on {signum.name}:\n{self.output()}")


def asm_command() -> list[str]:
    return [sys.executable, "-c", "from asm.cli import main; main()"]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``asm worker`` processes; each is stopped (SIGKILL if need be) after the test."""
    started: list[Worker] = []

    def start(
        *, name: str | None = None, concurrency: int = 4, wait: bool = True, config: Path | None = None
    ) -> Worker:
        name = name or f"w{len(started) + 1}-{uuid.uuid4().hex[:6]}"
        log = tmp_path / f"{name}.log"
        args = [*asm_command(), "worker", "--name", name, "--concurrency", str(concurrency)]
        if config is not None:
            args += ["--config", str(config)]
        with log.open("wb") as handle:
            process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path)
        worker = Worker(process, log, name)
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.process.wait()


async def wait_for_events(
    rt: asm.Runtime, session_id: str, predicate: Callable[[list[asm.Event]], bool], what: str
) -> list[asm.Event]:
    """The session's events once ``predicate`` holds for them (long-polling the store, bounded)."""
    seen: list[asm.Event] = []
    after = 0
    with trio.move_on_after(WAIT):
        while not predicate(seen):
            page = await rt.store.wait_for_events(session_id, after=after, timeout=1.0)
            seen.extend(page.events)
            after = page.cursor
        return seen
    pytest.fail(f"gave up after {WAIT:g}s waiting for {what}")
