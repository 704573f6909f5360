"""What each bad input gets: a clear AsmError (or exit status and one line), and nothing lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import kombu
import pytest
import trio
from asm_celery import TASK_NAME, celery_options, make_app
from asm_sqlalchemy import upgrade

import asm
from asm import AsmError, RunStatus
from asm.events import EventType

from .conftest import BROKER, WAIT, Config, Worker, asm_command, queue_depth, wait_until


async def test_an_unreachable_broker_fails_the_run_and_names_the_broker_without_its_password(config: Config) -> None:
    config.write(broker="amqp://guest:s3cret@127.0.0.1:1//")
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        with pytest.raises(AsmError) as caught:
            await server.submit("hello")
        error = caught.value
        assert error.code == "storage_connection_failed"
        assert "amqp://guest:***@127.0.0.1:1//" in error.message and "s3cret" not in error.message
        run_id = error.details["run_id"]
        run = await rt.store.get_run(run_id)
        assert run.status is RunStatus.FAILED  # not lost: stored failed, with why
        assert run.error is not None and run.error.code == "storage_connection_failed"
        events = (await rt.store.read_events(server.session_id, run_id=run_id)).events
        assert [e.type for e in events] == [EventType.RUN_QUEUED, EventType.RUN_FAILED]
        assert (await server.refresh()).queued == ()


async def test_a_sqlite_store_is_refused_with_the_celery_backend(tmp_path: Path, config: Config) -> None:
    config.write(store=f"sqlite:///{tmp_path / 'asm.db'}")
    async with asm.open_runtime(config_file=config.path) as rt:
        with pytest.raises(AsmError) as caught:
            async with asm.open_session_server(rt):
                pass
    assert caught.value.code == "invalid_config"
    assert "PostgreSQL" in caught.value.message and "several machines" in caught.value.message
    with trio.fail_after(WAIT):
        done = await trio.run_process(
            [*asm_command(), "worker", "--config", str(config.path)], capture_stderr=True, check=False
        )
    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert "asm: error [invalid_config]" in stderr and "PostgreSQL" in stderr


async def test_a_worker_refuses_a_database_with_pending_migrations(config: Config) -> None:
    await upgrade(config.database, "0001")  # an older asm's schema
    config.write()
    with trio.fail_after(WAIT):
        done = await trio.run_process(
            [*asm_command(), "worker", "--config", str(config.path)], capture_stderr=True, check=False
        )
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "asm: error [migration_required]" in stderr and "asm db upgrade" in stderr


async def test_a_task_for_an_unknown_run_is_acked_and_logged(
    config: Config, queue: str, workers: Callable[..., Worker]
) -> None:
    path = config.write()
    worker = workers(concurrency=1)
    app = make_app(celery_options(asm.load_config(config_file=path).config))
    await trio.to_thread.run_sync(lambda: app.send_task(TASK_NAME, args=["run_does_not_exist"], queue=queue))
    wait_until(lambda: "run_does_not_exist: no such run in the store; acked" in worker.output(), "the log line")
    # The worker goes on: a real run after it completes, and the bogus task did not come back.
    async with asm.open_runtime(config_file=path) as rt, asm.open_session_server(rt) as server:
        run = await server.wait(await server.submit("after the bogus task"), timeout=WAIT)
        assert run.status is RunStatus.COMPLETED
    assert worker.output().count("run_does_not_exist") == 1
    assert queue_depth(queue) == 0
    app.close()


async def test_config_mistakes(config: Config) -> None:
    assert celery_options({"on_worker_lost": "resume"}).on_worker_lost == "resume"
    with pytest.raises(AsmError) as caught:
        celery_options({"on_worker_lost": "retry", "concurrency": 0})
    assert "on_worker_lost" in caught.value.message and "concurrency must be >= 1" in caught.value.message
    with pytest.raises(AsmError) as caught:
        celery_options({"brokr_url": "amqp://x"})
    assert caught.value.code == "invalid_config" and "brokr_url" in caught.value.message
    config.write()
    text = config.path.read_text().replace('backend = "celery"', 'backend = "celeri"')
    config.path.write_text(text)
    async with asm.open_runtime(config_file=config.path) as rt:
        with pytest.raises(AsmError) as caught:
            async with asm.open_session_server(rt):
                pass
    assert caught.value.code == "invalid_config" and "celeri" in caught.value.message
    assert "celery" in caught.value.details["installed"]


def test_the_broker_is_reachable() -> None:
    """What every other test here needs (a failure here, not a skip, when it is down)."""
    with kombu.Connection(BROKER, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
