"""Runs submitted through the celery backend, executed by real ``asm worker``
processes: each exactly once, in submit order per session, followed live and
cancelled from the client."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio
from asm_celery import CelerySessionServer

import asm
from asm import RunStatus
from asm.events import RUN_END_TYPES, EventType

from .conftest import WAIT, Config, Worker, asm_command, wait_for_events

SESSIONS = 20
RUNS = 1000


async def _events(rt: asm.Runtime, session_id: str) -> list[asm.Event]:
    return list((await rt.store.read_events(session_id)).events)


async def test_runs_over_four_workers_run_once_each_in_submit_order(
    config: Config, workers: Callable[..., Worker]
) -> None:
    config.write(chunks=3)
    started_workers = [workers(concurrency=4) for _ in range(4)]
    submitted: dict[str, list[str]] = {}
    async with asm.open_runtime(config_file=config.path) as rt, contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(asm.open_session_server(rt, max_queued_runs=RUNS)) for _ in range(SESSIONS)
        ]
        assert all(isinstance(server, CelerySessionServer) for server in servers)

        async def submit_all(server: CelerySessionServer) -> None:
            ids = submitted.setdefault(server.session_id, [])
            for i in range(RUNS // SESSIONS):
                ids.append(await server.submit(f"run {i} of {server.session_id}"))

        async with trio.open_nursery() as nursery:
            for server in servers:
                nursery.start_soon(submit_all, server)
        for server in servers:
            await server.drain(timeout=WAIT * 3)

        owners: Counter[int] = Counter()
        for session_id, ids in submitted.items():
            events = await _events(rt, session_id)
            assert [event.seq for event in events] == list(range(1, len(events) + 1))  # gap-free
            started = [event.run_id for event in events if event.type is EventType.RUN_STARTED]
            assert started == ids  # each run started exactly once, in submit order
            ended = Counter(event.run_id for event in events if event.type in RUN_END_TYPES)
            assert ended == Counter(ids)
            for run in await rt.store.list_runs(session_id):
                assert run.status is RunStatus.COMPLETED, run
                assert run.output == "c0 c1 c2 "
                assert run.owner is not None
                owners[run.owner.process.pid] += 1
        assert set(owners) <= {worker.pid for worker in started_workers}
        assert len(owners) >= 2, owners  # the work was spread over the workers
        status = await servers[0].refresh()
        assert status.completed == RUNS // SESSIONS and status.queued == () and status.running == ()


async def test_sessions_take_turns_on_a_busy_worker(config: Config, workers: Callable[..., Worker]) -> None:
    # One slot, two sessions: runs submitted A1, B1, A2, B2 start in that order. A session's
    # next run waits at the back of the queue rather than taking the slot again at once (with
    # A2 queued when A1 ends, A would otherwise go on before B had a turn).
    config.write(chunks=4, delay=0.05)
    workers(concurrency=1)
    async with (
        asm.open_runtime(config_file=config.path) as rt,
        asm.open_session_server(rt) as a,
        asm.open_session_server(rt) as b,
    ):
        order = [await server.submit(f"run {i}") for i in range(2) for server in (a, b)]
        for server in (a, b):
            await server.drain(timeout=WAIT)
        runs = [await rt.store.get_run(run_id) for run_id in order]
    assert all(run.status is RunStatus.COMPLETED for run in runs)
    started = sorted(runs, key=lambda run: run.started_at or run.created_at)
    assert [run.id for run in started] == order


async def test_a_subscriber_follows_a_run_executing_in_a_worker(config: Config, workers: Callable[..., Worker]) -> None:
    config.write(chunks=20, delay=0.01)
    workers(concurrency=2)
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        async with server.subscribe(after=0) as events:
            run_id = await server.submit("follow me")
            seen: list[asm.Event] = []
            with trio.fail_after(WAIT):
                async for event in events:
                    seen.append(event)
                    if event.type in RUN_END_TYPES:
                        break
        types = [event.type for event in seen if event.run_id == run_id]
        assert types[:2] == [EventType.RUN_QUEUED, EventType.RUN_STARTED]
        assert types.count(EventType.MESSAGE_STREAMED) == 20
        assert types[-1] is EventType.RUN_COMPLETED
        assert [event.seq for event in seen] == list(range(seen[0].seq, seen[0].seq + len(seen)))
        run = await server.wait(run_id)
        assert run.status is RunStatus.COMPLETED


async def test_cancel_a_queued_run_and_an_executing_one(config: Config, workers: Callable[..., Worker]) -> None:
    config.write(chunks=400, delay=0.05)  # 20 s unless cancelled
    workers(concurrency=2)
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        first = await server.submit("long")
        second = await server.submit("waits for the first (max_concurrent_runs=1)")
        await wait_for_events(
            rt, server.session_id, lambda seen: any(e.type is EventType.MESSAGE_STREAMED for e in seen), "streaming"
        )
        queued = await server.cancel(second, reason="not needed")
        assert queued.status is RunStatus.CANCELLED
        running = await server.cancel(first, reason="stop it")
        assert running.status is RunStatus.CANCELLED
        assert running.error is not None and "stop it" in running.error.message
        events = await _events(rt, server.session_id)
        assert [e.type for e in events if e.run_id == second] == [EventType.RUN_QUEUED, EventType.RUN_CANCELLED]
        assert [e.type for e in events if e.run_id == first][-1] is EventType.RUN_CANCELLED
        assert sum(e.type is EventType.RUN_STARTED for e in events) == 1
        streamed = sum(e.type is EventType.MESSAGE_STREAMED for e in events)
        assert 0 < streamed < 400
        status = await server.refresh()
        assert status.cancelled == 2 and status.running == () and status.queued == ()


async def test_asm_events_follow_sees_a_run_executing_in_a_worker(
    config: Config, workers: Callable[..., Worker]
) -> None:
    config.write(chunks=20, delay=0.02)
    workers(concurrency=1)
    async with asm.open_runtime(config_file=config.path) as rt, asm.open_session_server(rt) as server:
        follower = await trio.lowlevel.open_process(
            [*asm_command(), "events", server.session_id, "--follow", "--json", "--config", str(config.path)],
            stdout=subprocess.PIPE,
        )
        try:
            run_id = await server.submit("followed from another process")
            assert follower.stdout is not None
            seen: list[dict[str, Any]] = []
            buffered = b""
            with trio.fail_after(WAIT):
                while not any(e["type"] == "run_completed" for e in seen):
                    chunk = await follower.stdout.receive_some()
                    assert chunk, "asm events --follow exited early"
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    seen += [json.loads(line) for line in lines if line.strip()]
        finally:
            follower.terminate()
            await follower.wait()
        mine = [e["type"] for e in seen if e.get("run_id") == run_id]
        assert mine[:2] == ["run_queued", "run_started"] and mine[-1] == "run_completed"
        assert mine.count("message_streamed") == 20
        assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
