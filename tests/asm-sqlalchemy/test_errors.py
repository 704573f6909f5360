"""Bad input and broken databases give AsmErrors with codes, never tracebacks."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trio
from asm_sqlalchemy import SqlAlchemyStore, create_sqlalchemy_store, create_sqlite_store

from asm import AsmError, Event, Page, RunStatus, Session, SessionManager, SessionStatus
from asm.events import MessageStreamed, ToolCallStarted
from asm.model import new_id
from asm.providers.scripted import ScriptedProvider
from asm.serde import event_to_json


async def test_an_unreachable_server_is_a_storage_error_with_the_password_masked() -> None:
    store = SqlAlchemyStore("postgresql://alice:s3cret-pw@127.0.0.1:1/nowhere")
    with pytest.raises(AsmError) as caught:
        await store.open()
    error = caught.value
    assert error.code == "storage_connection_failed" and error.category == "storage"
    assert "s3cret-pw" not in error.message and "s3cret-pw" not in repr(error.details)
    assert "alice:***@127.0.0.1:1/nowhere" in error.message
    assert "s3cret-pw" not in repr(store)
    await store.aclose()


async def test_a_corrupt_event_row_names_its_id_and_the_others_stay_readable(url: str) -> None:
    async with SqlAlchemyStore(url) as store:
        await store.save_session(Session(id="ses_c", agent_id="a"))
        stored = await store.append_events([Event.new(MessageStreamed(f"d{i}"), session_id="ses_c") for i in range(5)])
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE asm_events SET body = :body WHERE id = :id"),
                {"body": '{"id": "broken', "id": stored[2].id},
            )
        engine.dispose()
        with pytest.raises(AsmError) as caught:
            await store.read_events("ses_c")
        assert caught.value.code == "storage_read_failed"
        assert stored[2].id in caught.value.message and caught.value.details["event_id"] == stored[2].id
        assert list((await store.read_events("ses_c", before=3)).events) == stored[:2]
        assert list((await store.read_events("ses_c", after=3)).events) == stored[3:]
        assert await store.latest_seq("ses_c") == 5


async def test_a_row_holding_another_events_json_is_named_as_corrupt(url: str) -> None:
    # Valid JSON of a whole event (the body form before revision 0004), but of the event at
    # seq 4: the row at seq 2 must not pass for it.
    async with SqlAlchemyStore(url) as store:
        await store.save_session(Session(id="ses_m", agent_id="a"))
        stored = await store.append_events([Event.new(MessageStreamed(f"d{i}"), session_id="ses_m") for i in range(5)])
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE asm_events SET body = :body WHERE id = :id"),
                {"body": event_to_json(stored[3]), "id": stored[1].id},
            )
        engine.dispose()
        with pytest.raises(AsmError) as caught:
            await store.read_events("ses_m", limit=10)
        assert caught.value.code == "storage_read_failed"
        assert caught.value.details == {"event_id": stored[1].id, "seq": 2}
        assert list((await store.read_events("ses_m", after=2)).events) == stored[2:]


async def test_an_unknown_types_filter_is_a_validation_error(store: SqlAlchemyStore) -> None:
    with pytest.raises(AsmError) as caught:
        await store.read_events("ses_x", types=["message_streamed", "no_such_type"])
    assert caught.value.code == "validation_error" and "no_such_type" in caught.value.message
    with pytest.raises(AsmError) as caught:
        await store.search_events(types=["nope"])
    assert caught.value.code == "validation_error" and "nope" in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/db", "not a url", "sqlite://", "sqlite:///:memory:", "postgresql+asyncpg://h/db"],
)
def test_unsupported_urls_are_invalid_config(url: str) -> None:
    with pytest.raises(AsmError) as caught:
        SqlAlchemyStore(url)
    assert caught.value.code == "invalid_config"


@pytest.mark.parametrize(
    ("factory", "config"),
    [
        (create_sqlite_store, {"pathh": "x.db"}),
        (create_sqlite_store, {"batch_max_events": 0}),
        (create_sqlite_store, {"synchronous": "SOMETIMES"}),
        (create_sqlite_store, {"batch_delay": "soon"}),
        (create_sqlalchemy_store, {}),
        (create_sqlalchemy_store, {"url": "postgresql://h/db", "poll_interval": 0}),
    ],
)
def test_bad_store_config_is_invalid_config(factory: object, config: dict[str, object]) -> None:
    with pytest.raises(AsmError) as caught:
        factory(config)  # type: ignore[operator]
    assert caught.value.code == "invalid_config"


async def test_bad_query_arguments_are_validation_errors(store: SqlAlchemyStore) -> None:
    calls = [
        store.search_sessions(agent="x"),
        store.search_sessions(status="sleeping"),
        store.search_sessions(since="yesterday"),
        store.search_sessions(limit=-1),
        store.search_sessions(limit=2**63),
        store.search_sessions(offset=2**64),
        store.search_events(limit=2**63),
        store.usage_summary(group_by="planet"),
        store.usage_summary(colour="red"),
        store.search_events(text=""),
        store.search_events(limit=0),
        store.apply_retention(max_age_days=-1),
    ]
    for call in calls:
        with pytest.raises(AsmError) as caught:
            await call
        assert caught.value.code == "validation_error", caught.value


async def test_a_closed_store_says_so(sqlite_url: str) -> None:
    store = SqlAlchemyStore(sqlite_url)
    await store.open()
    await store.aclose()
    with pytest.raises(AsmError) as caught:
        await store.get_session("ses_x")
    assert caught.value.code == "invalid_operation"


async def test_a_table_dropped_behind_the_stores_back_is_a_storage_error(url: str) -> None:
    """Reads and appends go through the drivers' own cursors on their hot paths: the drivers'
    errors come out as AsmErrors too, naming what was being done."""
    async with SqlAlchemyStore(url) as store:
        await store.append_events([Event.new(MessageStreamed("x"), session_id="ses_d")])
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE asm_events"))
        engine.dispose()
        with pytest.raises(AsmError) as read:
            await store.read_events("ses_d")
        with pytest.raises(AsmError) as append:
            await store.append_events([Event.new(MessageStreamed("y"), session_id="ses_d")])
    assert read.value.code == "storage_error" and "reading events of session ses_d" in read.value.message
    assert append.value.code == "storage_error" and "appending events" in append.value.message
    assert "asm_events" in read.value.message and "asm_events" in append.value.message


async def test_an_append_that_fails_in_its_transaction_stores_none_of_it_and_the_next_one_writes(
    sqlite_url: str,
) -> None:
    """SQLite appends keep a connection of their own (asm_sqlalchemy._store): a failure inside
    the transaction rolls all of it back, the head included, and the next append goes on."""
    async with SqlAlchemyStore(sqlite_url) as store:
        await store.append_events([Event.new(MessageStreamed("a"), session_id="ses_f")])
        path = sqlite_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as side:  # fires on the second event of the next batch
            side.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON asm_events WHEN NEW.body LIKE '%boom%' "
                "BEGIN INSERT INTO no_such_table VALUES (1); END"
            )
        batch = [Event.new(MessageStreamed(text), session_id="ses_f") for text in ("b", "boom", "c")]
        with pytest.raises(AsmError) as caught:
            await store.append_events(batch)
        assert caught.value.code == "storage_error" and "no_such_table" in caught.value.message
        assert [e.data.delta for e in (await store.read_events("ses_f")).events] == ["a"]  # type: ignore[attr-defined]
        with sqlite3.connect(path) as side:
            side.execute("DROP TRIGGER refuse")
        stored = await store.append_events(batch)
        assert [e.seq for e in stored] == [2, 3, 4]
        assert [e.data.delta for e in (await store.read_events("ses_f")).events] == ["a", "b", "boom", "c"]  # type: ignore[attr-defined]


async def test_a_waiter_that_cannot_open_its_connection_gets_a_storage_error(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    async with SqlAlchemyStore(f"sqlite:///{directory / 'asm.db'}") as store:
        await store.append_events([Event.new(MessageStreamed("x"), session_id="ses_w")])
        await store.read_events("ses_w")  # a pooled connection for reads (appends keep one of their own)
        shutil.rmtree(directory)  # the store's open connections go on; a new one cannot open the file
        with pytest.raises(AsmError) as caught:
            await store.wait_for_events("ses_w", after=1, timeout=5)
    assert caught.value.code == "storage_connection_failed"
    assert "waiting for events of session ses_w" in caught.value.message


class _FailingAfterFirst:
    """A sqlite3 connection whose ``PRAGMA data_version`` fails after its first answer."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.calls = 0

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.calls += 1
        if self.calls > 1:
            raise sqlite3.OperationalError("disk I/O error")
        return self.real.execute(sql)

    def close(self) -> None:
        self.real.close()


async def test_a_waiter_whose_poll_fails_goes_on_by_rereading(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite waiter's own connection failing is not the store failing: the waiter re-reads
    through the store, still wakes for new events, and the broken connection is not reused."""
    from asm_sqlalchemy import _wake

    made: list[_FailingAfterFirst] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> _FailingAfterFirst:
        made.append(_FailingAfterFirst(real_connect(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(_wake.sqlite3, "connect", connect)
    async with SqlAlchemyStore(sqlite_url, poll_interval=0.01) as store:
        pages: list[Page] = []

        async def wait() -> None:
            pages.append(await store.wait_for_events("ses_p", after=0, timeout=5))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.sleep(0.1)  # several failed polls
            async with SqlAlchemyStore(sqlite_url) as other:  # another store object: no in-process wake-up
                await other.append_events([Event.new(MessageStreamed("x"), session_id="ses_p")])
        assert [e.data for e in pages[0].events] == [MessageStreamed("x")]
        assert len(made) == 1 and made[0].calls >= 3
        assert store._waker is not None and store._waker._pool._idle == []  # type: ignore[attr-defined]


async def test_text_that_is_not_unicode_is_stored_with_replacement_characters(store: SqlAlchemyStore) -> None:
    """A prompt of bytes that are not UTF-8 (lone surrogates in Python), and output with them:
    the run completes and both databases store U+FFFD in their place."""
    bad, fixed = "bad \udcff\udcfe", "bad \ufffd\ufffd"
    provider = ScriptedProvider([f"out {bad}", ToolCallStarted("t1", "Bash", {"cmd": bad})])
    run = await SessionManager(store, provider=provider).run_once(bad, options={"note": bad})
    assert run.status is RunStatus.COMPLETED
    stored = await store.get_run(run.id)
    assert stored.input.prompt == fixed and stored.input.options == {"note": fixed}
    data = [e.data for e in (await store.read_events(run.session_id)).events]
    assert MessageStreamed(f"out {fixed}") in data
    assert ToolCallStarted("t1", "Bash", {"cmd": fixed}) in data
    assert (await store.get_session(run.session_id)).status is SessionStatus.COMPLETED


async def test_a_direct_save_of_text_that_is_not_unicode_is_a_validation_error(store: SqlAlchemyStore) -> None:
    session = Session(id=new_id("ses"), agent_id="a \udcff")
    with pytest.raises(AsmError) as caught:
        await store.save_session(session)
    assert caught.value.code == "validation_error" and "U+FFFD" in caught.value.message
    event = Event.new(MessageStreamed("x \ud800"), session_id=new_id("ses"))
    with pytest.raises(AsmError) as caught:
        await store.append_events([event])
    assert caught.value.code == "validation_error"


async def test_a_postgresql_connection_lost_while_idle_is_replaced_before_use(
    pg_url: str, drop_idle_connections: Callable[[str], int]
) -> None:
    url = f"{pg_url}&application_name=asm_idle_test"
    async with SqlAlchemyStore(url) as store:
        await store.save_session(Session(id="ses_p", agent_id="a"))
        assert drop_idle_connections("asm_idle_test") >= 1
        await trio.sleep(1.1)  # idle in the pool for more than a second: checked before use
        assert (await store.get_session("ses_p")).id == "ses_p"
        stored = await store.append_events([Event.new(MessageStreamed("x"), session_id="ses_p")])
        assert stored[0].seq == 1


async def test_a_postgresql_connection_lost_while_in_steady_use_fails_one_call_and_the_next_reconnects(
    pg_url: str, drop_idle_connections: Callable[[str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Connections in steady use are not checked on every checkout (a round trip each): the call
    # that meets a dead one gets a storage error, and the pool is renewed for the next. (Steady
    # use however slow the machine: no connection here counts as idle for an hour.)
    monkeypatch.setattr("asm_sqlalchemy._engine.IDLE_PING_S", 3600.0)
    url = f"{pg_url}&application_name=asm_busy_test"
    async with SqlAlchemyStore(url) as store:
        await store.save_session(Session(id="ses_q", agent_id="a"))
        assert drop_idle_connections("asm_busy_test") >= 1
        with pytest.raises(AsmError) as caught:
            await store.get_session("ses_q")
        assert caught.value.code == "storage_connection_failed", caught.value
        assert (await store.get_session("ses_q")).id == "ses_q"
