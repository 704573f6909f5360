"""Schema versions: a fresh database is created and stamped; an older one
needs ``asm db upgrade`` (and gets it, keeping its data); the migrations build
exactly the models' schema."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import trio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from asm_sqlalchemy import SqlAlchemyStore, current, head_revision, upgrade
from asm_sqlalchemy._migrations import alembic_config
from asm_sqlalchemy._schema import REVISIONS, VERSION_TABLE, metadata

import asm
from asm import AsmError, Run, RunInput, RunStatus, Session, SessionStatus, TokenUsage
from asm.cli import run_cli
from asm.serde import unstructure


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
