"""The PubSub port: the in-process broker, the manager's broker and the pub/sub sink."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import asm
from asm import AsmError, EventType, InMemorySessionStore, InProcessBroker, PubSubSink
from asm.events import MessageReceived
from asm.ports import PubSub
from asm.rendering import CompactRenderer, RenderingPipeline


def event(text: str, session_id: str = "ses_1") -> asm.Event:
    return asm.Event.new(MessageReceived(text), session_id=session_id)


async def collect(events: object, n: int, into: list[asm.Event]) -> None:
    async for item in events:  # type: ignore[attr-defined]
        into.append(item)
        if len(into) == n:
            return


async def test_the_broker_fans_out_to_every_subscriber_of_a_topic() -> None:
    broker = InProcessBroker()
    assert isinstance(broker, PubSub)
    first: list[asm.Event] = []
    second: list[asm.Event] = []
    async with broker.subscribe("t") as a, broker.subscribe("t") as b, broker.subscribe("other") as c:
        assert broker.subscriber_count("t") == 2
        sent = [event(str(i)) for i in range(5)]
        for item in sent:
            await broker.publish("t", item)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect, a, 5, first)
            nursery.start_soon(collect, b, 5, second)
        assert first == sent and second == sent
        with trio.move_on_after(0.01) as quiet:
            await c.__anext__()
        assert quiet.cancelled_caught
    assert broker.subscriber_count("t") == 0


async def test_a_plain_subscriber_that_falls_behind_gets_queue_full() -> None:
    broker = InProcessBroker(buffer=2)
    async with broker.subscribe("t") as events:
        for i in range(3):
            await broker.publish("t", event(str(i)))
        with pytest.raises(AsmError) as info:
            await events.__anext__()
    assert info.value.code == "queue_full"
    assert "open_subscription" in info.value.message


async def test_a_publish_never_waits_for_a_subscriber() -> None:
    broker = InProcessBroker(buffer=1)
    async with broker.subscribe("t"):
        for i in range(100):
            await broker.publish("t", event(str(i)))


async def test_buffer_must_be_positive() -> None:
    with pytest.raises(AsmError) as info:
        InProcessBroker(buffer=0)
    assert info.value.code == "validation_error"
    with pytest.raises(AsmError) as info:
        async with InProcessBroker().subscribe("t", buffer=0):
            pass
    assert info.value.code == "validation_error"


async def test_the_managers_broker_carries_every_stored_event_of_a_session() -> None:
    store = InMemorySessionStore()
    manager = asm.SessionManager(store, provider=asm.EchoProvider())
    session = await manager.start_session()
    await manager.activate_session(session.id)
    broker = asm.broker_for(manager)
    assert asm.broker_for(manager) is broker
    got: list[asm.Event] = []
    async with broker.subscribe(asm.session_topic(session.id)) as events:
        run = await manager.start_run(session.id, "hello")
        await manager.execute_run(run.id)
        stored = (await store.read_events(session.id, after=2)).events
        await collect(events, len(stored), got)
    assert got == list(stored)
    assert asm.session_topic(session.id) == f"asm.session.{session.id}"


async def test_the_pubsub_sink_publishes_what_the_rendering_pipeline_sees() -> None:
    broker = InProcessBroker()
    pipeline = RenderingPipeline(CompactRenderer(), [PubSubSink(broker)])
    store = InMemorySessionStore()
    manager = asm.SessionManager(store, provider=asm.EchoProvider(), on_event=pipeline)
    got: list[asm.Event] = []
    async with trio.open_nursery() as nursery:
        ready = trio.Event()

        async def listen() -> None:
            # Session ids are not known in advance: listen on the first session's topic.
            async with broker.subscribe(asm.session_topic(session_id)) as events:
                ready.set()
                await collect(events, 5, got)

        session = await manager.start_session()
        session_id = session.id
        nursery.start_soon(listen)
        await ready.wait()
        await manager.activate_session(session.id)
        run = await manager.start_run(session.id, "hi")
        await manager.execute_run(run.id)
        await pipeline.aclose()
    assert [e.type for e in got][:2] == [EventType.SESSION_STARTED, EventType.RUN_STARTED]
    assert all(e.session_id == session.id for e in got)


async def test_a_durable_subscription_can_follow_a_pubsub_and_reads_what_it_misses_from_the_store() -> None:
    # The runs execute through one manager (another process, say) that publishes on a PubSub;
    # the subscriber has a manager of its own on the same store, and follows the PubSub.
    reads: list[int] = []

    class Store(InMemorySessionStore):
        async def read_events(self, session_id: str, **kwargs: object) -> asm.Page:
            reads.append(int(kwargs.get("after", 0)))  # type: ignore[call-overload]
            return await super().read_events(session_id, **kwargs)  # type: ignore[arg-type]

    store = Store()
    broker = InProcessBroker()
    lose: list[int] = [0]
    dropped: list[int] = []

    class Lossy:
        """The broker, losing the event of seq ``lose[0]`` (a pub/sub loses what it loses)."""

        async def write(self, text: str, event: asm.Event | None) -> None:
            if event is not None:
                if event.seq == lose[0]:
                    dropped.append(lose[0])
                    return
                await broker.publish(asm.session_topic(event.session_id), event)

        async def aclose(self) -> None:
            pass

    pipeline = RenderingPipeline(CompactRenderer(), [Lossy()])
    worker = asm.SessionManager(store, provider=asm.EchoProvider(), on_event=pipeline)
    here = asm.SessionManager(store, provider=asm.EchoProvider())
    session = await worker.start_session()
    await worker.activate_session(session.id)
    first = await worker.start_run(session.id, "before the subscription")
    await worker.execute_run(first.id)
    already = (await store.read_events(session.id)).events
    lose[0] = len(already) + 2  # the second live event of the next run
    got: list[asm.Event] = []
    async with asm.open_subscription(here, session.id, after=1, follow=broker) as events:
        assert isinstance(broker, PubSub)
        await collect(events, len(already) - 1, got)  # the stored ones
        run = await worker.start_run(session.id, "while subscribed")
        await worker.execute_run(run.id)
        stored = (await store.read_events(session.id)).events
        reads.clear()  # the subscriber read nothing while the run executed: from here on, its reads
        with trio.fail_after(5):
            await collect(events, len(stored) - 1, got)
    assert [e.seq for e in got] == list(range(2, len(stored) + 1))  # no gap, no duplicate
    assert got == list(stored[1:])
    assert dropped == [len(already) + 2]  # lost on the way: read from the store, the rest came live
    assert reads == [len(already) + 1]


async def test_follow_must_be_manager_store_or_a_pubsub() -> None:
    manager = asm.SessionManager(InMemorySessionStore(), provider=asm.EchoProvider())
    with pytest.raises(AsmError) as info:
        async with asm.open_subscription(manager, "ses_1", follow="redis"):  # type: ignore[arg-type]
            pass
    assert info.value.code == "validation_error" and "PubSub" in info.value.message
