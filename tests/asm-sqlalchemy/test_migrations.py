"""Schema versions: a fresh database is created and stamped; an older one
needs ``asm db upgrade`` (and gets it, keeping its data); the migrations build
exactly the models' schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import trio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from asm_sqlalchemy import SqlAlchemyStore, current, head_revision, upgrade
from asm_sqlalchemy._check import check_database
from asm_sqlalchemy._engine import create_store_engine, normalize_url
from asm_sqlalchemy._migrations import alembic_config, rewrite_event_bodies
from asm_sqlalchemy._schema import REVISIONS, VERSION_TABLE, metadata

import asm
from asm import AsmError, Event, Run, RunInput, RunStatus, Session, SessionStatus, TokenUsage
from asm.cli import run_cli
from asm.events import MessageStreamed
from asm.model import new_id
from asm.serde import event_to_json, unstructure
from asm.testing import sample_payloads


def test_the_revision_list_matches_the_alembic_scripts() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert tuple(reversed([r.revision for r in script.walk_revisions()])) == REVISIONS
    assert script.get_current_head() == head_revision() == REVISIONS[-1]


async def test_a_fresh_database_is_created_and_stamped(url: str) -> None:
    assert await current(url) == (None, head_revision())
    async with SqlAlchemyStore(url) as store:
        assert await store.health_check() == []
    assert await current(url) == (head_revision(), head_revision())


async def test_an_older_schema_needs_asm_db_upgrade_which_keeps_the_data(url: str) -> None:
    before, after = await upgrade(url, "0001")
    assert (before, after) == (None, "0001")
    engine = sa.create_engine(url)
    run = Run(
        id="run_old",
        session_id="ses_old",
        input=RunInput.coerce("hi", options={"model": "m-1"}),
        status=RunStatus.COMPLETED,
        usage=TokenUsage(3, 4),
    )
    session = Session(id="ses_old", agent_id="old")
    with engine.begin() as conn:  # rows as the 0001 code wrote them
        conn.execute(
            sa.text(
                "INSERT INTO asm_runs (id, session_id, status, provider, created_at, body) "
                "VALUES ('run_old', 'ses_old', 'completed', 'echo', :at, :body)"
            ),
            {"at": run.created_at.replace(tzinfo=None), "body": json.dumps(unstructure(run))},
        )
        conn.execute(
            sa.text(
                "INSERT INTO asm_sessions (id, agent_id, status, provider, created_at, updated_at, body) "
                "VALUES ('ses_old', 'old', 'pending', NULL, :at, :at, :body)"
            ),
            {"at": session.created_at.replace(tzinfo=None), "body": json.dumps(unstructure(session))},
        )
    engine.dispose()

    with pytest.raises(AsmError) as caught:
        async with SqlAlchemyStore(url):
            pass
    assert caught.value.code == "migration_required"
    assert "asm db upgrade" in caught.value.message and "0001" in caught.value.message

    assert await upgrade(url) == ("0001", head_revision())
    async with SqlAlchemyStore(url) as store:
        assert await store.get_run("run_old") == run
        summary = await store.usage_summary(group_by="model")
        assert summary["groups"] == [
            {
                "key": "m-1",
                "runs": 1,
                "input_tokens": 3,
                "output_tokens": 4,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "total_tokens": 7,
                "cost_usd": None,
            }
        ]
    assert await upgrade(url) == (head_revision(), head_revision()), "upgrading twice is a no-op"


async def test_the_migrations_build_exactly_the_models_schema(url: str) -> None:
    await upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


async def test_a_schema_newer_than_the_code_is_a_storage_error(url: str) -> None:
    async with SqlAlchemyStore(url):
        pass
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE asm_alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(AsmError) as caught:
        async with SqlAlchemyStore(url):
            pass
    assert caught.value.code == "storage_error"
    assert "upgrade asm-sqlalchemy" in caught.value.message


async def test_an_0002_database_works_as_it_is_and_says_the_upgrade_is_pending(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0003 only adds indexes: a database at 0002 (an older asm's, like the embedded default a
    user already has) is used as it is, not refused and not changed; check says to upgrade."""
    assert await upgrade(url, "0002") == (None, "0002")

    async with SqlAlchemyStore(url) as store:
        manager = asm.SessionManager(store, provider=asm.EchoProvider())
        run = await manager.run_once("still works")

    assert run.status is RunStatus.COMPLETED and run.output == "still works"
    assert await current(url) == ("0002", head_revision())  # not upgraded behind anyone's back
    capsys.readouterr()
    assert await trio.to_thread.run_sync(run_cli, ["db", "check", "--url", url]) == 1  # it writes to sys.stdout
    expected = f"the schema is at revision 0002, not {head_revision()}; run `asm db upgrade`"
    assert expected in capsys.readouterr().out


async def test_an_0002_database_upgrades_to_the_session_list_indexes(url: str) -> None:
    """A database at the previous head keeps its sessions through the 0003 upgrade and its
    filtered lists then read through the composite indexes."""
    assert await upgrade(url, "0002") == (None, "0002")
    engine = sa.create_engine(url)
    sessions = [
        Session(id=f"ses_{i:02d}", agent_id=f"agent-{i % 2}", provider="echo", status=status)
        for i, status in enumerate([SessionStatus.PENDING, SessionStatus.ACTIVE, SessionStatus.COMPLETED] * 4)
    ]
    with engine.begin() as conn:  # rows as the 0002 code wrote them
        for session in sessions:
            conn.execute(
                sa.text(
                    "INSERT INTO asm_sessions (id, agent_id, status, provider, created_at, updated_at, body) "
                    "VALUES (:id, :agent, :status, 'echo', :at, :at, :body)"
                ),
                {
                    "id": session.id,
                    "agent": session.agent_id,
                    "status": session.status.value,
                    "at": session.created_at.replace(tzinfo=None),
                    "body": json.dumps(unstructure(session)),
                },
            )
    try:
        assert await upgrade(url) == ("0002", head_revision())
        with engine.connect() as conn:
            indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(conn).get_indexes("asm_sessions")}
        assert indexes == {
            "ix_asm_sessions_status_agent_created": ["status", "agent_id", "created_at", "id"],
            "ix_asm_sessions_agent_created": ["agent_id", "created_at", "id"],
            "ix_asm_sessions_status_created": ["status", "created_at", "id"],
            "ix_asm_sessions_provider_created": ["provider", "created_at", "id"],
            "ix_asm_sessions_created_at": ["created_at"],
            "ix_asm_sessions_updated_at": ["updated_at"],
        }
        async with SqlAlchemyStore(url) as store:
            found = await store.search_sessions(status=SessionStatus.COMPLETED, agent_id="agent-0", limit=50)
            expected = [s for s in sessions if s.status is SessionStatus.COMPLETED and s.agent_id == "agent-0"]
            assert found == sorted(expected, key=lambda s: (s.created_at, s.id), reverse=True)
            assert len(await store.search_sessions(provider="echo")) == len(sessions)
        if engine.dialect.name == "sqlite":
            # the page is read through the index, newest first, with no sort of the matching rows
            with engine.connect() as conn:
                plan = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT id, body FROM asm_sessions WHERE status = 'completed' "
                    "AND agent_id = 'agent-0' ORDER BY created_at DESC, id DESC LIMIT 51"
                ).all()
            details = [row[3] for row in plan]
            assert details == [
                "SEARCH asm_sessions USING INDEX ix_asm_sessions_status_agent_created (status=? AND agent_id=?)"
            ]
    finally:
        engine.dispose()


def _bodies(url: str) -> dict[str, str]:
    """Every stored event's body by event id, as the database holds it."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT id, body FROM asm_events")).all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _every_kind(session_id: str, run_id: str) -> list[Event]:
    """An event of every type (run and provider set or not), and one at a time outside UTC."""
    events = [
        Event.new(data, session_id=session_id, run_id=run_id if i % 2 else None, provider="p" if i % 3 else None)
        for i, data in enumerate(sample_payloads())
    ]
    offset = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2024, 12, 31, 23, 59, 59, 654321, tzinfo=offset)
    return [*events, Event(new_id("evt"), session_id, None, MessageStreamed("far east"), at)]


async def _read_all(store: SqlAlchemyStore, session_id: str) -> list[Event]:
    page = await store.read_events(session_id)
    return list(page.events)


async def test_an_0003_database_works_as_it_is_and_keeps_whole_bodies(url: str) -> None:
    """A database at 0003 (which an older asm may share) is used as it is: the events
    appended there get whole bodies, which that asm reads; check says to upgrade."""
    assert await upgrade(url, "0003") == (None, "0003")
    async with SqlAlchemyStore(url) as store:
        await store.save_session(Session(id="ses_w", agent_id="a"))
        stored = await store.append_events(_every_kind("ses_w", "run_w"))
        assert await _read_all(store, "ses_w") == stored
    assert await current(url) == ("0003", head_revision())
    assert sorted(_bodies(url).values()) == sorted(event_to_json(e) for e in stored)
    problems = [f"{problem.kind}: {problem.message}" for problem in await check_database(url)]
    assert problems == [f"schema: the schema is at revision 0003, not {head_revision()}; run `asm db upgrade`"]


async def test_the_0004_upgrade_rewrites_bodies_lean_in_batches_while_the_store_is_used(url: str) -> None:
    """The rewrite runs a batch per transaction while stores keep reading and appending:
    between batches, every event reads back as stored (whole and lean rows side by side),
    an append lands, and in the end every readable body is lean and reads back as the very
    event (byte for byte in public JSON); a corrupt body is left as it was."""
    await upgrade(url, "0003")
    async with SqlAlchemyStore(url) as old:  # opened at 0003: whole bodies, like an older asm's
        await old.save_session(Session(id="ses_a", agent_id="a"))
        await old.save_session(Session(id="ses_b", agent_id="a"))
        log = {
            "ses_a": await old.append_events(_every_kind("ses_a", "run_a")),
            "ses_b": await old.append_events(_every_kind("ses_b", "run_b")),
        }
        broken = (await old.append_events([Event.new(MessageStreamed("x"), session_id="ses_c")]))[0]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE asm_events SET body = :b WHERE id = :id"), {"b": '{"id": "broken', "id": broken.id}
        )
        # 0004 changes no table: stamping it is what the alembic step of the upgrade does
        conn.execute(sa.text("UPDATE asm_alembic_version SET version_num = '0004'"))
    engine.dispose()

    store_engine = create_store_engine(normalize_url(url), pool_size=2)
    try:
        async with SqlAlchemyStore(url) as store:
            passes = rewrite_event_bodies(store_engine, batch=7)
            counts = []
            for counts in passes:  # noqa: B007 - each step commits one batch
                for session_id in log:
                    assert await _read_all(store, session_id) == log[session_id]
                log["ses_a"] += await store.append_events([Event.new(MessageStreamed("during"), session_id="ses_a")])
            assert counts[1] == 1, "the corrupt body is left whole"
            assert counts[0] >= 2 * len(_every_kind("x", "y"))
        assert await upgrade(url) == ("0004", "0004")  # a second pass finds nothing left to do
    finally:
        store_engine.dispose()

    bodies = _bodies(url)
    assert bodies.pop(broken.id) == '{"id": "broken'
    assert all(body.startswith('{"data":') for body in bodies.values()), bodies
    far_east = log["ses_a"][len(_every_kind("x", "y")) - 1]
    assert json.loads(bodies[far_east.id]) == {
        "data": {"delta": "far east", "stream": None},
        "at": far_east.at.isoformat(),
    }
    async with SqlAlchemyStore(url) as store:
        for session_id, events in log.items():
            read = await _read_all(store, session_id)
            assert read == events
            assert [event_to_json(e) for e in read] == [event_to_json(e) for e in events]
        found = await store.search_events(session_id="ses_b", limit=None)
        assert sorted(found, key=lambda e: e.seq or 0) == log["ses_b"]
        with pytest.raises(AsmError) as caught:
            await store.read_events("ses_c")
        assert caught.value.code == "storage_read_failed" and caught.value.details["event_id"] == broken.id


async def test_asm_db_upgrade_from_0003_rewrites_the_bodies(url: str) -> None:
    """``upgrade`` (what ``asm db upgrade`` runs) stamps 0004 and rewrites the rows."""
    await upgrade(url, "0003")
    async with SqlAlchemyStore(url) as old:
        await old.save_session(Session(id="ses_u", agent_id="a"))
        stored = await old.append_events(_every_kind("ses_u", "run_u"))
    assert await upgrade(url) == ("0003", head_revision())
    assert all(body.startswith('{"data":') for body in _bodies(url).values())
    async with SqlAlchemyStore(url) as store:
        assert await _read_all(store, "ses_u") == stored
        more = await store.append_events([Event.new(MessageStreamed("new"), session_id="ses_u")])
    assert _bodies(url)[more[0].id] == '{"data":{"delta":"new","stream":null}}'
