"""Group commit: concurrent appends share transactions, batches stay bounded,
and consumers see an event only once it is committed."""

from __future__ import annotations

import threading

import attrs
import trio
from asm_sqlalchemy import SqlAlchemyStore

from asm import Event, SessionManager
from asm.events import MessageStreamed
from asm.providers.scripted import ScriptedProvider


async def test_concurrent_appends_share_transactions(url: str) -> None:
    async with SqlAlchemyStore(url) as store:

        async def writer(index: int) -> None:
            for i in range(20):
                await store.append_events([Event.new(MessageStreamed(f"{i}"), session_id=f"ses_gc_{index}")])

        async with trio.open_nursery() as nursery:
            for index in range(50):
                nursery.start_soon(writer, index)
        stats = store.statistics()
        assert (stats.appends, stats.events) == (1000, 1000)
        assert stats.commits < stats.appends, "appends waiting together must be committed together"
        assert stats.appends_per_commit > 1
        for index in range(50):
            assert await store.latest_seq(f"ses_gc_{index}") == 20


async def test_batches_are_bounded_by_batch_max_events(sqlite_url: str) -> None:
    async with SqlAlchemyStore(sqlite_url, batch_max_events=10, batch_delay=0.01) as store:
        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(store.append_events, [Event.new(MessageStreamed("x"), session_id="ses_b")])
        stats = store.statistics()
        assert stats.events == 40 and stats.largest_commit <= 10 and stats.commits >= 4
        # A single larger append is still written whole, in one transaction.
        stored = await store.append_events([Event.new(MessageStreamed("y"), session_id="ses_b") for _ in range(25)])
        assert [e.seq for e in stored] == list(range(41, 66))
        assert store.statistics().largest_commit == 25


async def test_on_event_sees_only_committed_events(url: str) -> None:
    """Every event a run hands to on_event is already readable through a
    different store object (other connections), so it survives a crash."""
    async with SqlAlchemyStore(url) as store, SqlAlchemyStore(url) as observer:
        checked: list[int] = []

        async def check(event: Event) -> None:
            assert event.seq is not None
            page = await observer.read_events(event.session_id, after=event.seq - 1, limit=1)
            assert page.events == (event,), f"event {event.seq} was handed on before its commit"
            checked.append(event.seq)

        manager = SessionManager(store, provider=ScriptedProvider([f"chunk {i} " for i in range(300)]))
        run = await manager.run_once("go", on_event=check)
        assert run.output == "".join(f"chunk {i} " for i in range(300))
        assert checked == list(range(1, len(checked) + 1)) and len(checked) >= 300
        assert await observer.latest_seq(run.session_id) == len(checked)


async def test_owned_events_are_stored_as_the_very_objects_delivered(store: SqlAlchemyStore) -> None:
    # A run's write queue gives its events up (append_owned_events): sequenced in place, not copied.
    delivered: list[Event] = []
    manager = SessionManager(store, provider=ScriptedProvider([f"c{i} " for i in range(300)]))
    run = await manager.run_once("go", on_event=delivered.append)
    stored = (await store.read_events(run.session_id)).events
    assert list(stored) == delivered and [e.seq for e in delivered] == list(range(1, len(stored) + 1))
    fresh = [Event.new(MessageStreamed(f"x{i}"), session_id=run.session_id) for i in range(3)]
    appended = await store.append_owned_events(fresh)
    head = len(stored)
    assert all(a is f for a, f in zip(appended, fresh, strict=True))
    assert [e.seq for e in fresh] == [head + 1, head + 2, head + 3]
    # Beyond the contract (fresh ids only), this store still returns an id already stored as first stored.
    again = Event.new(MessageStreamed("y"), session_id=run.session_id)
    copy = attrs.evolve(fresh[0], seq=None)
    assert await store.append_owned_events([again, copy]) == [again, fresh[0]]
    assert again.seq == head + 4 and await store.latest_seq(run.session_id) == head + 4


async def test_owned_events_are_announced_taken_on_the_event_loop_thread_before_they_commit(
    store: SqlAlchemyStore,
) -> None:
    """``on_taken`` (asm.ports.OwnedAppend) comes once the rows are built, on the loop's thread,
    before the append returns; an append of events already stored (its retry) still says it once."""
    session = await SessionManager(store).start_session(agent_id="agent")
    calls: list[tuple[int, int]] = []

    def taken() -> None:
        calls.append((threading.get_ident(), len(calls)))

    fresh = [Event.new(MessageStreamed(f"x{i}"), session_id=session.id) for i in range(5)]
    await store.append_owned_events(fresh, taken)
    assert calls == [(threading.get_ident(), 0)]
    again = Event.new(MessageStreamed("y"), session_id=session.id)
    await store.append_owned_events([again, attrs.evolve(fresh[0], seq=None)], taken)  # an id stored: a retry
    assert len(calls) == 2 and again.seq == fresh[-1].seq + 1  # type: ignore[operator]


async def test_a_batch_of_one_run_and_a_mixed_batch_store_every_column_as_given(url: str) -> None:
    """One run's events (one envelope: SQLite binds it once per statement, each row's seq
    computed) and a batch mixing runs and providers read back exactly as appended, across
    the statements a batch over 1,000 rows takes."""
    async with SqlAlchemyStore(url, batch_max_events=10_000) as store:
        one_run = [
            Event.new(MessageStreamed(f"d{i}"), session_id="ses_cols", run_id="run_a", provider="p")
            for i in range(2_500)
        ]
        envelopes = [("run_a", "p"), ("run_b", "p"), (None, "q"), ("run_a", None), (None, None)]
        mixed = [
            Event.new(MessageStreamed(f"m{i}"), session_id="ses_cols", run_id=run, provider=provider)
            for i, (run, provider) in enumerate(envelopes * 300)
        ]
        other = [Event.new(MessageStreamed("o"), session_id="ses_cols_other", run_id="run_a", provider="p")]
        stored = await store.append_events(one_run)
        stored += await store.append_owned_events(mixed + other)
        assert [e.seq for e in stored[: len(one_run) + len(mixed)]] == list(range(1, 4_001))
        assert stored[-1].seq == 1
        page = await store.read_events("ses_cols", limit=10_000)
        assert page.events == tuple(stored[:-1])
        assert [(e.run_id, e.provider) for e in page.events[2_500:2_505]] == envelopes
        assert (await store.read_events("ses_cols_other")).events == (stored[-1],)
