"""``max_concurrent_runs`` per session and ``max_parallel_runs`` everywhere hold
across worker processes (they are checked in the database at claim time)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
import trio

import asm
from asm import RunStatus
from asm.events import RUN_END_TYPES, EventType

from .conftest import WAIT, Config, Worker


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


async def _submit_and_drain(
    rt: asm.Runtime, stack: contextlib.AsyncExitStack, *, sessions: int, runs: int
) -> list[Any]:
    """``sessions`` session servers of ``rt`` (closed with ``stack``), each given ``runs`` runs
    at once; returned once every run has ended."""
    servers = [await stack.enter_async_context(asm.open_session_server(rt)) for _ in range(sessions)]
    async with trio.open_nursery() as nursery:
        for server in servers:
            for i in range(runs):
                nursery.start_soon(server.submit, f"run {i}")
    for server in servers:
        await server.drain(timeout=WAIT)
    return servers


async def test_max_concurrent_runs_of_a_session_across_workers(config: Config, workers: Callable[..., Worker]) -> None:
    config.write(chunks=6, delay=0.05)
    workers(concurrency=3)
    workers(concurrency=3)
    async with (
        asm.open_runtime(config_file=config.path) as rt,
        asm.open_session_server(rt, max_concurrent_runs=2) as server,
    ):
        ids = [await server.submit(f"run {i}") for i in range(6)]
        await server.drain(timeout=WAIT)
        running = most = 0
        for event in (await rt.store.read_events(server.session_id)).events:  # in seq order: the store's order
            if event.type is EventType.RUN_STARTED:
                running += 1
                most = max(most, running)
            elif event.type in RUN_END_TYPES:
                running -= 1
        assert most == 2
        for run_id in ids:
            assert (await rt.store.get_run(run_id)).status is RunStatus.COMPLETED


async def test_max_parallel_runs_holds_across_sessions_and_workers(
    config: Config, workers: Callable[..., Worker]
) -> None:
    config.write(chunks=4, delay=0.05, max_parallel_runs=1)
    workers(concurrency=2)
    workers(concurrency=2)
    async with asm.open_runtime(config_file=config.path) as rt, contextlib.AsyncExitStack() as stack:
        servers = await _submit_and_drain(rt, stack, sessions=3, runs=2)
        runs = [run for server in servers for run in await rt.store.list_runs(server.session_id)]
        assert len(runs) == 6 and all(run.status is RunStatus.COMPLETED for run in runs)
        intervals = []
        for run in runs:
            assert run.started_at is not None and run.ended_at is not None
            intervals.append((run.started_at.timestamp(), run.ended_at.timestamp()))
        assert _most_at_once(intervals) == 1


async def test_each_process_keeps_a_bounded_number_of_database_connections(
    config: Config, workers: Callable[..., Worker]
) -> None:
    # Per process: the store's pool ([stores.sqlalchemy] max_threads, 8) and its LISTEN
    # connection, the ledger's pool ([celery] ledger_connections, 2) and its LISTEN connection.
    config.write(chunks=3, delay=0.02)
    started = [workers(concurrency=8), workers(concurrency=8)]
    async with asm.open_runtime(config_file=config.path) as rt, contextlib.AsyncExitStack() as stack:
        await _submit_and_drain(rt, stack, sessions=8, runs=4)
        with psycopg.connect(config.database.replace("postgresql+psycopg://", "postgresql://")) as conn:
            rows = conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "GROUP BY application_name"
            ).fetchall()
    by_name = dict(rows)
    for worker in started:
        assert 1 <= by_name.get(worker.name, 0) <= 3  # the ledger's 2 and its LISTEN connection
    assert by_name.get("asm-celery client", 0) <= 3  # the same: wait listens for runs done
    assert sum(by_name.values()) <= 3 * 12 + 1  # three processes, and this one
