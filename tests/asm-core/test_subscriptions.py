"""Durable subscriptions: stored events after a cursor, then live ones, no gap, no duplicate."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import asm
from asm import AsmError, EventType, InMemorySessionStore, RunStatus, ScriptedProvider
from asm.events import MessageReceived
from asm.providers.scripted import Delay


async def take(events: asm.Subscription, n: int) -> list[asm.Event]:
    return [await events.__anext__() for _ in range(n)]


async def test_backfill_then_live_across_runs() -> None:
    store = InMemorySessionStore()
    provider = ScriptedProvider(["a", "b", Delay(0.001), "c"])
    async with asm.open_session_server(store, provider, max_concurrent_runs=2) as server:
        await server.wait(await server.submit("first"))
        stored = await store.latest_seq(server.session_id)
        async with server.subscribe(after=0) as events:
            backlog = await take(events, stored)
            ids = [await server.submit("again") for _ in range(3)]
            for run_id in ids:
                await server.wait(run_id)
            latest = await store.latest_seq(server.session_id)
            live = await take(events, latest - stored)
    assert [e.seq for e in backlog + live] == list(range(1, latest + 1))
    assert {e.run_id for e in live} == set(ids)


async def test_take_ready_hands_over_what_was_read_in_order_without_waiting() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, ScriptedProvider(["a", "b", "c"])) as server:
        await server.wait(await server.submit("go"))
        stored = await store.latest_seq(server.session_id)
        async with server.subscribe(after=0) as events:
            first = await events.__anext__()
            rest = events.take_ready()  # the rest of the page the first read brought in
            assert events.take_ready() == []
            more = await take(events, stored - 1 - len(rest))
    assert [e.seq for e in [first, *rest, *more]] == list(range(1, stored + 1))
    assert rest


async def test_take_ready_also_takes_live_events_delivered_meanwhile() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, ScriptedProvider(["a", "b", "c"])) as server:
        await server.wait(await server.submit("go"))
        stored = await store.latest_seq(server.session_id)
        async with server.subscribe(after=stored) as events:
            assert events.take_ready() == []  # nothing read yet: the store comes first
            await server.wait(await server.submit("again"))
            first = await events.__anext__()  # reads the store: the caught-up subscription is live now
            middle = await store.latest_seq(server.session_id)
            await server.wait(await server.submit("third"))  # delivered live, not yet read
            taken = events.take_ready()
            latest = await store.latest_seq(server.session_id)
            assert [e.seq for e in [first, *taken]] == list(range(stored + 1, latest + 1))
            assert latest > middle and events.cursor == latest and events.take_ready() == []


async def test_after_a_cursor_and_filters() -> None:
    store = InMemorySessionStore()
    async with asm.open_session_server(store, ScriptedProvider(["x", "y"])) as server:
        first = await server.submit("one")
        await server.wait(first)
        cursor = await store.latest_seq(server.session_id)
        async with (
            server.subscribe(after=cursor) as everything,
            server.subscribe(types=[EventType.RUN_COMPLETED]) as completions,
            server.subscribe(run_id=first, types=["message_streamed"]) as chunks,
        ):
            second = await server.submit("two")
            await server.wait(second)
            assert (await everything.__anext__()).seq == cursor + 1
            done = await take(completions, 2)
            assert [e.run_id for e in done] == [first, second]
            assert [e.data.delta for e in await take(chunks, 2)] == ["x", "y"]  # type: ignore[attr-defined]
            assert server.status().subscribers == 3


async def test_a_slow_subscriber_never_blocks_a_run_and_loses_nothing() -> None:
    store = InMemorySessionStore()
    provider = ScriptedProvider([f"chunk {i}" for i in range(300)])
    async with (
        asm.open_session_server(store, provider) as server,
        server.subscribe(buffer=4) as events,
    ):
        # Nobody reads while the run streams 300 events into a 4-event buffer.
        run = await server.wait(await server.submit("go"))
        assert run.status is RunStatus.COMPLETED
        latest = await store.latest_seq(server.session_id)
        got = await take(events, latest)
        assert [e.seq for e in got] == list(range(1, latest + 1))
        assert events.catch_ups >= 1
        assert events.cursor == latest


async def test_subscribe_on_the_runtime_for_any_session(isolated: object) -> None:
    async with asm.open_runtime(provider="echo") as runtime:
        run = await runtime.run_once("hello")
        async with asm.open_subscription(runtime, run.session_id, types=["run_completed"]) as events:
            event = await events.__anext__()
    assert event.run_id == run.id


async def test_follow_store_sees_what_other_writers_append() -> None:
    # Two managers on one store stand for two processes sharing a database.
    store = InMemorySessionStore()
    here = asm.SessionManager(store, provider=asm.EchoProvider())
    elsewhere = asm.SessionManager(store, provider=ScriptedProvider(["a", "b", "c"]))
    session = await elsewhere.start_session()
    await elsewhere.activate_session(session.id)
    async with (
        asm.open_subscription(here, session.id, follow="store") as everything,
        asm.open_subscription(here, session.id, follow="store", types=["message_streamed"]) as chunks,
    ):
        run = await elsewhere.start_run(session.id, "go")
        await elsewhere.execute_run(run.id)
        latest = await store.latest_seq(session.id)
        assert [e.seq for e in await take(everything, latest)] == list(range(1, latest + 1))
        assert [e.data.delta for e in await take(chunks, 3)] == ["a", "b", "c"]  # type: ignore[attr-defined]
        with trio.move_on_after(0.01) as nothing_more:
            await chunks.__anext__()
        assert nothing_more.cancelled_caught
        assert chunks.cursor == latest


async def test_follow_must_be_manager_or_store() -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=asm.EchoProvider())
    with pytest.raises(AsmError) as info:
        async with asm.open_subscription(manager, "ses_x", follow="redis"):  # type: ignore[arg-type]
            pass
    assert info.value.code == "validation_error"


@pytest.mark.parametrize("after", [-1, "3", 1.0])
async def test_a_bad_cursor_is_a_validation_error(after: object) -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=asm.EchoProvider())
    with pytest.raises(AsmError) as info:
        async with asm.open_subscription(manager, "ses_x", after=after):  # type: ignore[arg-type]
            pass
    assert info.value.code == "validation_error"


async def test_an_unknown_type_is_a_validation_error() -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=asm.EchoProvider())
    with pytest.raises(AsmError) as info:
        async with asm.open_subscription(manager, "ses_x", types=["no_such_type"]):
            pass
    assert info.value.code == "validation_error"


# -- the switch from stored to live, under every interleaving hypothesis finds ------
#
# The scenario plays the pipeline's two halves separately: "append" stores
# events (the store's acknowledgement), "deliver" hands one stored event to the
# live side, in any order and as late as hypothesis likes (events of concurrent
# runs are handed on out of seq order). Subscriptions start, with tiny buffers,
# between any two steps; "consume" reads whatever a subscription can give
# without waiting (the mock clock makes "would block" instant and exact).

Append = st.tuples(st.just("append"), st.integers(1, 4))
Deliver = st.tuples(st.just("deliver"), st.integers(0, 50))
Subscribe = st.tuples(st.just("subscribe"), st.integers(1, 6), st.integers(0, 3))
Consume = st.tuples(st.just("consume"), st.integers(0, 5), st.integers(1, 8))
Operations = st.lists(st.one_of(Append, Deliver, Deliver, Subscribe, Consume), min_size=1, max_size=40)


async def scenario(operations: list[tuple[str, int, int]]) -> None:
    store = InMemorySessionStore()
    manager = asm.SessionManager(store, provider=asm.EchoProvider())
    topic = asm.session_topic("ses_h")
    broker = asm.broker_for(manager)
    undelivered: list[asm.Event] = []
    subscriptions: list[tuple[int, asm.Subscription, list[asm.Event]]] = []

    async def consume(events: asm.Subscription, seen: list[asm.Event], n: int) -> None:
        for _ in range(n):
            with trio.move_on_after(1):
                seen.append(await events.__anext__())
                continue
            return  # it would block: nothing more to give now

    async with contextlib.AsyncExitStack() as stack:
        for kind, a, *rest in operations:
            if kind == "append":
                batch = [asm.Event.new(MessageReceived(f"m{i}"), session_id="ses_h") for i in range(a)]
                undelivered.extend(await store.append_events(batch))
            elif kind == "deliver" and undelivered:
                broker.publish_nowait(topic, undelivered.pop(a % len(undelivered)))
            elif kind == "subscribe":
                after = max(0, await store.latest_seq("ses_h") - rest[0])
                events = await stack.enter_async_context(asm.open_subscription(manager, "ses_h", after=after, buffer=a))
                subscriptions.append((after, events, []))
            elif kind == "consume" and subscriptions:
                _, events, seen = subscriptions[a % len(subscriptions)]
                await consume(events, seen, rest[0])
        for event in undelivered:
            broker.publish_nowait(topic, event)
        latest = await store.latest_seq("ses_h")
        stored = (await store.read_events("ses_h")).events
        for after, events, seen in subscriptions:
            await consume(events, seen, latest)
            assert [e.seq for e in seen] == list(range(after + 1, latest + 1))
            assert seen == list(stored[after:])
            with trio.move_on_after(1) as nothing_more:
                await events.__anext__()
            assert nothing_more.cancelled_caught


@settings(max_examples=300, deadline=None)
@given(Operations)
def test_no_gap_and_no_duplicate_at_the_switch(operations: list[tuple[str, int, int]]) -> None:
    trio.run(scenario, operations, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_concurrent_runs_in_one_session_reach_a_live_subscriber_in_seq_order() -> None:
    store = InMemorySessionStore()
    provider = ScriptedProvider([f"c{i}" for i in range(40)])
    async with (
        asm.open_session_server(store, provider, max_concurrent_runs=4) as server,
        server.subscribe(buffer=10_000) as events,
    ):
        ids = [await server.submit("go") for _ in range(8)]
        for run_id in ids:
            await server.wait(run_id)
        latest = await store.latest_seq(server.session_id)
        got = await take(events, latest)
    assert [e.seq for e in got] == list(range(1, latest + 1))
