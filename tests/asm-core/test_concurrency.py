"""ConcurrencyLimiter: run and session slots shared by servers, FIFO-fair, visible in status()."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import asm
from asm import AsmError, ConcurrencyLimiter, EventType, InMemorySessionStore, ScriptedProvider
from asm.providers.scripted import Stall


def stalling() -> ScriptedProvider:
    return ScriptedProvider([Stall()], name="stall")


async def test_one_run_slot_is_shared_by_every_server() -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=stalling())
    limiter = ConcurrencyLimiter(max_parallel_runs=1)
    async with (
        asm.open_session_server(manager, limiter=limiter, max_concurrent_runs=4) as a,
        asm.open_session_server(manager, limiter=limiter, max_concurrent_runs=4) as b,
    ):
        first = await a.submit("a")
        second = await b.submit("b")
        await trio.testing.wait_all_tasks_blocked()
        assert a.status().running == (first,)
        assert b.status().running == () and b.status().queued == (second,)
        stats = b.status().limiter
        assert stats is not None
        assert (stats.active_runs, stats.waiting_runs, stats.max_parallel_runs) == (1, 1, 1)
        await a.cancel(first)
        await trio.testing.wait_all_tasks_blocked()
        assert b.status().running == (second,)
        await b.cancel(second)
        assert limiter.statistics().active_runs == 0


async def test_waiting_servers_are_served_first_come_first_served() -> None:
    started: list[str] = []

    def note(event: asm.Event) -> None:
        if event.type is EventType.RUN_STARTED and event.run_id is not None:
            started.append(event.run_id)

    manager = asm.SessionManager(InMemorySessionStore(), provider=stalling(), on_event=note)
    limiter = ConcurrencyLimiter(max_parallel_runs=1)
    async with (
        asm.open_session_server(manager, limiter=limiter, max_concurrent_runs=2) as a,
        asm.open_session_server(manager, limiter=limiter, max_concurrent_runs=2) as b,
        asm.open_session_server(manager, limiter=limiter, max_concurrent_runs=2) as c,
    ):
        order = []
        for server in (a, b, c, a, b):
            order.append(await server.submit("work"))
            await trio.testing.wait_all_tasks_blocked()
        assert limiter.statistics().waiting_runs == 3  # b1, c1, a2; b2 queues behind b1 in its server
        for _ in range(len(order)):
            await trio.testing.wait_all_tasks_blocked()
            running = [run_id for s in (a, b, c) for run_id in s.status().running]
            assert len(running) == 1
            await a.manager.cancel_run(running[0])
        assert started == order


async def test_session_slots_make_a_server_wait_to_open() -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=asm.EchoProvider())
    limiter = ConcurrencyLimiter(max_parallel_sessions=1)
    opened: list[str] = []

    async def second_server() -> None:
        async with asm.open_session_server(manager, limiter=limiter) as server:
            opened.append(server.session_id)
            assert server.status().limiter is not None

    async with trio.open_nursery() as nursery, asm.open_session_server(manager, limiter=limiter) as first:
        opened.append(first.session_id)
        nursery.start_soon(second_server)
        await trio.testing.wait_all_tasks_blocked()
        stats = first.status().limiter
        assert stats is not None
        assert (stats.active_sessions, stats.waiting_sessions) == (1, 1)
        assert len(opened) == 1
    assert len(opened) == 2
    assert limiter.statistics().active_sessions == 0


async def test_unlimited_by_default() -> None:
    stats = ConcurrencyLimiter().statistics()
    assert stats.max_parallel_runs is None and stats.max_parallel_sessions is None


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
async def test_limits_must_be_positive_ints(bad: object) -> None:
    for key in ("max_parallel_sessions", "max_parallel_runs"):
        with pytest.raises(AsmError) as info:
            ConcurrencyLimiter(**{key: bad})  # type: ignore[arg-type]
        assert info.value.code == "validation_error"
