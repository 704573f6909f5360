"""A worker killed mid-run (its run taken over by another, per ``on_worker_lost``),
and a worker stopped with SIGTERM (its runs drained, or cancelled after the grace period)."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable

import attrs
import psycopg
import pytest

import asm
from asm import RunStatus
from asm.continuity import RESUME_PROMPT
from asm.events import RUN_END_TYPES, EventType, MessageStreamed, RunInterrupted, RunStarted
from asm.model import ProcessIdentity, RunOwner, utcnow
from asm.serde import converter

from .conftest import WAIT, Config, Worker, wait_for_events, wait_until


def _streamed(count: int) -> Callable[[list[asm.Event]], bool]:
    return lambda seen: sum(e.type is EventType.MESSAGE_STREAMED for e in seen) >= count


@pytest.mark.parametrize("on_worker_lost", ["restart", "resume", "fail"])
async def test_a_killed_workers_run_ends_exactly_once_on_another(
    config: Config, workers: Callable[..., Worker], on_worker_lost: str
) -> None:
    config.write(chunks=40, delay=0.05, on_worker_lost=on_worker_lost)
    first, second = workers(concurrency=2), workers(concurrency=2)
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        run_id = await server.submit("a long run")
        follower = await server.submit("the next run of the session")
        await wait_for_events(rt, server.session_id, _streamed(3), "the run to stream")
        owner = (await rt.store.get_run(run_id)).owner
        assert owner is not None
        victim, survivor = (first, second) if owner.process.pid == first.pid else (second, first)
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL

        run = await server.wait(run_id, timeout=WAIT)
        after = await server.wait(follower, timeout=WAIT)
        events = list((await rt.store.read_events(server.session_id)).events)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gap-free across the takeover
        mine = [e for e in events if e.run_id == run_id]
        (interrupted,) = [e.data for e in mine if isinstance(e.data, RunInterrupted)]
        assert (interrupted.attempt, interrupted.then) == (1, on_worker_lost)
        assert f"pid {victim.pid}" in interrupted.owner
        assert Counter(e.type for e in mine if e.type in RUN_END_TYPES) == Counter(
            [EventType.RUN_FAILED if on_worker_lost == "fail" else EventType.RUN_COMPLETED]
        )
        assert mine[-1].type in RUN_END_TYPES
        if on_worker_lost == "restart":
            assert run.status is RunStatus.COMPLETED and run.output == "".join(f"c{i} " for i in range(40))
            assert sum(e.type is EventType.RUN_STARTED for e in mine) == 2
            assert run.owner is not None and run.owner.process.pid == survivor.pid
        elif on_worker_lost == "resume":
            # Executed again, sent its cut attempt and asked to go on (the scripted provider
            # streams its whole script again: what a model makes of the request is its own).
            started = [e.data for e in mine if e.type is EventType.RUN_STARTED]
            assert [s.continuation for s in started] == [None, "resume"]
            sent = [e.data.content for e in mine if e.type is EventType.MESSAGE_SENT]
            assert sent == ["a long run", RESUME_PROMPT]
            assert run.status is RunStatus.COMPLETED and run.owner is not None
            assert run.owner.process.pid == survivor.pid
        else:
            assert run.status is RunStatus.FAILED and run.error is not None
            assert run.error.provider_error is not None and run.error.provider_error.kind == "interrupted"
            assert sum(e.type is EventType.RUN_STARTED for e in mine) == 1
        assert after.status is RunStatus.COMPLETED  # the session goes on after the takeover
        for stored in await rt.store.list_runs(server.session_id):
            assert stored.status is not RunStatus.RUNNING


async def test_sigterm_lets_a_run_finish(config: Config, workers: Callable[..., Worker]) -> None:
    config.write(chunks=20, delay=0.05, grace_period=60.0)
    worker = workers(concurrency=2)
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        run_id = await server.submit("finish me")
        await wait_for_events(rt, server.session_id, _streamed(1), "the run to stream")
        assert worker.stop(signal.SIGTERM) == 0
        run = await rt.store.get_run(run_id)  # the worker exited after the run ended
        assert run.status is RunStatus.COMPLETED
        assert run.output == "".join(f"c{i} " for i in range(20))


async def test_sigterm_cancels_runs_still_going_after_the_grace_period(
    config: Config, workers: Callable[..., Worker]
) -> None:
    config.write(chunks=2000, delay=0.05, grace_period=0.5)
    worker = workers(concurrency=2)
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        run_id = await server.submit("too long")
        queued = await server.submit("queued behind it")
        await wait_for_events(rt, server.session_id, _streamed(1), "the run to stream")
        assert worker.stop(signal.SIGTERM) == 0
        run = await rt.store.get_run(run_id)
        assert run.status is RunStatus.CANCELLED
        assert run.error is not None and "grace period" in run.error.message
        events = list((await rt.store.read_events(server.session_id, run_id=run_id)).events)
        assert events[-1].type is EventType.RUN_CANCELLED
        # The run queued behind it was not started: its task went back to the queue for another worker.
        assert (await rt.store.get_run(queued)).status is RunStatus.PENDING
        workers(concurrency=1)
        await wait_for_events(
            rt,
            server.session_id,
            lambda seen: any(e.type is EventType.RUN_STARTED and e.run_id == queued for e in seen),
            "the queued run to start on the new worker",
        )
        assert (await server.cancel(queued)).status is RunStatus.CANCELLED


async def test_a_run_owned_on_another_host_is_taken_over_only_once_its_lease_has_expired(
    config: Config, workers: Callable[..., Worker]
) -> None:
    # A worker on another machine claimed the run and started it, then went silent: nothing on
    # this host can tell whether it lives, so only its lease (driven here by hand) decides.
    config.write(chunks=3, claim_wait=0.3, poll_interval=0.1)
    ghost = RunOwner("other-host.example", ProcessIdentity(4242, 99))
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        run_id = await server.submit("owned elsewhere")  # no worker yet: its task waits in the queue
        run = await rt.store.get_run(run_id)
        await rt.store.claim_run(attrs.evolve(run, status=RunStatus.RUNNING, started_at=utcnow(), owner=ghost))
        await rt.manager.record_event(server.session_id, RunStarted("scripted"), run_id=run_id, provider="scripted")
        await rt.manager.record_event(server.session_id, MessageStreamed("half an ans"), run_id=run_id)
        ledger = config.database.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(ledger, autocommit=True) as conn:
            conn.execute(
                "UPDATE asm_celery_runs SET state = 'running', attempt = 1, worker_id = 'ghost', token = run_id, "
                "owner = %s, lease_expires_at = now() + interval '1 hour' WHERE run_id = %s",
                (json.dumps(converter.unstructure(ghost)), run_id),
            )
            worker = workers(concurrency=2)
            # The worker got the task, found the run under a live lease on another host, and put
            # the task back (more than once: it keeps coming back to it).
            wait_until(lambda: worker.output().count("on another host under a live lease") >= 2, "the task requeued")
            owner, state = conn.execute(
                "SELECT worker_id, state FROM asm_celery_runs WHERE run_id = %s", (run_id,)
            ).fetchone() or (None, None)
            assert (owner, state) == ("ghost", "running")
            events = (await rt.store.read_events(server.session_id, run_id=run_id)).events
            assert EventType.RUN_INTERRUPTED not in [e.type for e in events]
            conn.execute(
                "UPDATE asm_celery_runs SET lease_expires_at = now() - interval '1 second' WHERE run_id = %s",
                (run_id,),
            )
        done = await server.wait(run_id, timeout=WAIT)
        assert done.status is RunStatus.COMPLETED and done.output == "c0 c1 c2 "
        assert done.owner is not None and done.owner.process.pid == worker.pid
        events = list((await rt.store.read_events(server.session_id)).events)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        mine = [e for e in events if e.run_id == run_id]
        (interrupted,) = [e.data for e in mine if isinstance(e.data, RunInterrupted)]
        assert interrupted.attempt == 1 and interrupted.then == "restart"
        assert "worker ghost" in interrupted.owner and "pid 4242 on other-host.example" in interrupted.owner
        assert sum(e.type is EventType.RUN_STARTED for e in mine) == 2
        assert Counter(e.type for e in mine if e.type in RUN_END_TYPES) == Counter([EventType.RUN_COMPLETED])
