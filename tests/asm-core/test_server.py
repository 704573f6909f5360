"""SessionServer: FIFO start order, slots, queue limits, cancel, drain, status."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

import asm
from asm import AsmError, EventType, InMemorySessionStore, RunStatus, ScriptedProvider
from asm.providers.scripted import Delay, Fail, Stall


def stalling() -> ScriptedProvider:
    return ScriptedProvider(["working", Stall()], name="stall")


async def events_of(store: InMemorySessionStore, session_id: str, *types: EventType) -> list[asm.Event]:
    page = await store.read_events(session_id, types=types or None)
    return list(page.events)


async def test_runs_start_in_submission_order_and_complete() -> None:
    store = InMemorySessionStore()
    provider = ScriptedProvider(["a", Delay(0.001), "b"])
    async with asm.open_session_server(store, provider, max_concurrent_runs=3) as server:
        ids = [await server.submit(f"prompt {i}") for i in range(8)]
        runs = [await server.wait(run_id) for run_id in ids]
        status = server.status()
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 8
    assert [r.output for r in runs] == ["ab"] * 8
    started = await events_of(store, server.session_id, EventType.RUN_STARTED)
    assert [e.run_id for e in started] == ids
    queued = await events_of(store, server.session_id, EventType.RUN_QUEUED)
    assert [e.run_id for e in queued] == ids
    assert all(e.data.position >= 1 for e in queued)  # type: ignore[attr-defined]
    assert status.completed == 8 and status.queued == () and status.running == () and status.free_slots == 3


async def test_run_queued_is_stored_before_run_started() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, asm.EchoProvider()) as server:
        run_id = await server.submit("hi")
        await server.wait(run_id)
    page = await store.read_events(server.session_id, run_id=run_id)
    assert [e.type for e in page.events][:2] == [EventType.RUN_QUEUED, EventType.RUN_STARTED]


async def test_slots_limit_parallel_runs_and_free_ones_start_the_next() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, stalling(), max_concurrent_runs=2) as server:
        ids = [await server.submit(f"p{i}") for i in range(4)]
        await trio.testing.wait_all_tasks_blocked()
        status = server.status()
        assert status.running == tuple(ids[:2])
        assert status.queued == tuple(ids[2:])
        assert status.free_slots == 0
        cancelled = await server.cancel(ids[0])
        assert cancelled.status is RunStatus.CANCELLED
        await trio.testing.wait_all_tasks_blocked()
        assert server.status().running == (ids[1], ids[2])
        assert server.status().queued == (ids[3],)


async def test_cancel_a_queued_run_never_starts_it() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, stalling()) as server:
        first = await server.submit("one")
        second = await server.submit("two")
        await trio.testing.wait_all_tasks_blocked()
        run = await server.cancel(second, reason="not needed")
        assert run.status is RunStatus.CANCELLED
        assert (await server.wait(second)).status is RunStatus.CANCELLED
        assert server.status().queued == ()
        assert server.status().cancelled == 1
        events = await events_of(store, server.session_id)
        of_second = [e.type for e in events if e.run_id == second]
        assert of_second == [EventType.RUN_QUEUED, EventType.RUN_CANCELLED]
        await server.cancel(first)


async def test_cancel_a_running_run() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, stalling()) as server:
        run_id = await server.submit("one")
        await trio.testing.wait_all_tasks_blocked()
        assert server.status().running == (run_id,)
        run = await server.cancel(run_id, reason="enough")
        assert run.status is RunStatus.CANCELLED
        assert run.error is not None and "enough" in run.error.message
        # cancelling an ended run returns it as is
        assert (await server.cancel(run_id)).status is RunStatus.CANCELLED
        assert server.status().free_slots == 1


async def test_cancel_right_after_submit_while_starting() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, stalling()) as server:
        run_id = await server.submit("one")
        run = await server.cancel(run_id)
        assert run.status is RunStatus.CANCELLED
        assert server.status().running == ()


async def test_drain_finishes_in_flight_work_then_refuses_submits() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, ScriptedProvider(["x", Delay(0.001)]), max_concurrent_runs=2) as server:
        ids = [await server.submit(f"p{i}") for i in range(5)]
        await server.drain()
        status = server.status()
        assert status.completed == 5 and status.draining
        assert status.queued == () and status.running == ()
        for run_id in ids:
            assert (await server.wait(run_id)).status is RunStatus.COMPLETED
        with pytest.raises(AsmError) as info:
            await server.submit("late")
        assert info.value.code == "server_draining"
        assert not info.value.retryable


async def test_drain_timeout_leaves_runs_going() -> None:
    async with asm.open_session_server(InMemorySessionStore(), stalling()) as server:
        run_id = await server.submit("one")
        with pytest.raises(AsmError) as info:
            await server.drain(timeout=0.01)
        assert info.value.code == "timeout"
        assert server.status().running == (run_id,)


async def test_a_full_queue_refuses_with_retryable_queue_full() -> None:
    async with asm.open_session_server(
        InMemorySessionStore(), stalling(), max_concurrent_runs=1, max_queued_runs=1
    ) as server:
        await server.submit("runs")
        await trio.testing.wait_all_tasks_blocked()
        await server.submit("waits")
        with pytest.raises(AsmError) as info:
            await server.submit("refused")
        assert info.value.code == "queue_full"
        assert info.value.retryable
        assert info.value.category == "concurrency"
        assert len(server.status().queued) == 1


async def test_wait_and_cancel_of_an_unknown_run_are_run_not_found() -> None:
    async with asm.open_session_server(InMemorySessionStore(), asm.EchoProvider()) as server:
        for call in (server.wait, server.cancel):
            with pytest.raises(AsmError) as info:
                await call("run_nope")
            assert info.value.code == "run_not_found"


async def test_wait_timeout() -> None:
    async with asm.open_session_server(InMemorySessionStore(), stalling()) as server:
        run_id = await server.submit("one")
        with pytest.raises(AsmError) as info:
            await server.wait(run_id, timeout=0.01)
        assert info.value.code == "timeout"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
async def test_max_concurrent_runs_must_be_positive(bad: object) -> None:
    with pytest.raises(AsmError) as info:
        async with asm.open_session_server(InMemorySessionStore(), asm.EchoProvider(), max_concurrent_runs=bad):  # type: ignore[arg-type]
            pass
    assert info.value.code == "validation_error"


async def test_max_queued_runs_must_not_be_negative() -> None:
    with pytest.raises(AsmError) as info:
        async with asm.open_session_server(InMemorySessionStore(), asm.EchoProvider(), max_queued_runs=-1):
            pass
    assert info.value.code == "validation_error"


async def test_a_store_needs_a_provider_object() -> None:
    with pytest.raises(AsmError) as info:
        async with asm.open_session_server(InMemorySessionStore(), "echo"):
            pass
    assert info.value.code == "validation_error"


async def test_leaving_the_block_cancels_queued_and_running_runs() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, stalling()) as server:
        running = await server.submit("one")
        queued = await server.submit("two")
        await trio.testing.wait_all_tasks_blocked()
    assert (await store.get_run(running)).status is RunStatus.CANCELLED
    assert (await store.get_run(queued)).status is RunStatus.CANCELLED
    with pytest.raises(AsmError) as info:
        await server.submit("after")
    assert info.value.code == "server_draining"


async def test_failed_runs_are_counted_and_waiting_returns_them() -> None:
    provider = ScriptedProvider(["x", Fail(AsmError("provider_rate_limited", "slow down"))])
    async with asm.open_session_server(InMemorySessionStore(), provider) as server:
        run = await server.wait(await server.submit("p"))
        assert run.status is RunStatus.FAILED
        assert run.error is not None and run.error.code == "provider_rate_limited"
        assert server.status().failed == 1


async def test_run_timeout_is_counted() -> None:
    async with asm.open_session_server(InMemorySessionStore(), stalling(), run_timeout=0.01) as server:
        run = await server.wait(await server.submit("p"))
        assert run.status is RunStatus.TIMEOUT
        assert server.status().timed_out == 1


async def test_serves_an_existing_session_and_a_manager() -> None:
    store = InMemorySessionStore()
    manager = asm.SessionManager(store, provider=asm.EchoProvider())
    session = await manager.start_session()
    async with asm.open_session_server(manager, session=session.id) as server:
        assert server.session_id == session.id
        run = await server.wait(await server.submit("hello"))
        assert run.output == "hello"
    assert (await store.get_session(session.id)).status is asm.SessionStatus.ACTIVE


async def test_an_ended_session_cannot_be_served() -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=asm.EchoProvider())
    session = await manager.start_session()
    await manager.cancel_session(session.id)
    with pytest.raises(AsmError) as info:
        async with asm.open_session_server(manager, session=session.id):
            pass
    assert info.value.code == "session_not_active"


async def test_serves_a_runtime_with_its_configured_provider(isolated: object) -> None:
    async with asm.open_runtime(provider="echo") as runtime, asm.open_session_server(runtime) as server:
        run = await server.wait(await server.submit("from the runtime"))
        assert run.output == "from the runtime"
        assert run.provider == "echo"


async def test_on_event_sees_the_servers_events() -> None:
    seen: list[EventType] = []
    async with asm.open_session_server(
        InMemorySessionStore(), asm.EchoProvider(), on_event=lambda e: seen.append(e.type)
    ) as server:
        await server.wait(await server.submit("hi"))
    assert seen[0] is EventType.RUN_QUEUED
    assert seen[-1] is EventType.RUN_COMPLETED


async def test_status_is_a_frozen_value() -> None:
    async with asm.open_session_server(InMemorySessionStore(), asm.EchoProvider(), max_queued_runs=7) as server:
        status = server.status()
    assert status.max_queued_runs == 7 and status.max_concurrent_runs == 1
    with pytest.raises(AttributeError):
        status.free_slots = 3  # type: ignore[misc]


class GatedStore(InMemorySessionStore):
    """Holds every append of a ``run_queued`` event until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = trio.Event()
        self.holding = trio.Event()

    async def append_events(self, events: Sequence[asm.Event]) -> list[asm.Event]:
        if any(e.type is EventType.RUN_QUEUED for e in events):
            self.holding.set()
            await self.gate.wait()
        return await super().append_events(events)


async def test_a_submit_caught_by_the_close_leaves_no_pending_run() -> None:
    store = GatedStore()
    outcome: list[AsmError] = []

    async def submit(server: asm.SessionServer) -> None:
        try:
            await server.submit("caught mid-way")
        except AsmError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        async with asm.open_session_server(store, asm.EchoProvider()) as server:
            nursery.start_soon(submit, server)
            await store.holding.wait()
        store.gate.set()
    assert [e.code for e in outcome] == ["server_draining"]
    runs = await store.list_runs(server.session_id)
    assert [r.status for r in runs] == [RunStatus.CANCELLED]


async def test_a_runtimes_servers_share_its_configured_run_limit(isolated: object) -> None:
    provider = ScriptedProvider(["a", Delay(0.02), "b"])
    async with asm.open_runtime(max_parallel_runs=1) as runtime:
        assert runtime.limiter.max_parallel_runs == 1
        async with (
            asm.open_session_server(runtime, provider, max_concurrent_runs=2) as one,
            asm.open_session_server(runtime, provider, max_concurrent_runs=2) as two,
        ):
            runs = [await one.submit("x"), await two.submit("y"), await one.submit("z")]
            running_at_once = 0

            async def watch() -> None:
                nonlocal running_at_once
                while True:
                    running_at_once = max(running_at_once, len(one.status().running) + len(two.status().running))
                    await trio.sleep(0.001)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                for server, run_id in zip((one, two, one), runs, strict=True):
                    assert (await server.wait(run_id, timeout=30)).status is RunStatus.COMPLETED
                nursery.cancel_scope.cancel()
    assert running_at_once == 1


async def test_a_runtime_subscribes_to_any_session(isolated: object) -> None:
    async with asm.open_runtime(store="memory") as runtime:
        run = await runtime.run_once("hello there")
        async with runtime.subscribe(run.session_id, after=2) as events:
            first = await events.__anext__()
    assert first.seq == 3 and first.type is EventType.RUN_STARTED


@pytest.mark.parametrize("key", ["max_parallel_runs", "max_parallel_sessions"])
def test_runtime_limits_must_be_positive(isolated: object, key: str) -> None:
    with pytest.raises(AsmError) as caught:
        asm.load_config({key: 0})
    assert caught.value.code == "invalid_config" and key in caught.value.message


async def test_an_unknown_server_backend_is_a_config_error() -> None:
    async with asm.open_runtime(provider="echo", store="memory", **{"server.backend": "nowhere"}) as rt:
        with pytest.raises(AsmError) as caught:
            async with asm.open_session_server(rt):
                pass
    assert caught.value.code == "invalid_config"
    assert "'nowhere'" in caught.value.message and "local" in caught.value.details["installed"]


def test_the_server_table_takes_only_backend() -> None:
    with pytest.raises(AsmError) as caught:
        asm.load_config({"server": {"backend": "local", "workers": 3}}, env={}, user_file="/nonexistent")
    assert caught.value.code == "invalid_config" and "server" in caught.value.message
