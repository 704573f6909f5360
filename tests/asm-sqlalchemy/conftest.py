"""Fixtures: a fresh SQLite file, and a fresh PostgreSQL schema on the server at
127.0.0.1:5432 (database ``test``), dropped after the test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from asm_sqlalchemy import SqlAlchemyStore

PG_HOST = os.environ.get("ASM_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("ASM_TEST_PG_USER", "postgres")
PG_DB = os.environ.get("ASM_TEST_PG_DB", "test")


def pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=PG_HOST, port=5432, user=PG_USER, dbname=PG_DB, autocommit=True)


@pytest.fixture(autouse=True)
def _no_real_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user config or data dirs (subprocesses inherit this)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("ASM_STORE", raising=False)
    # Only this plugin (and asm-core's built-ins): others installed in a dev
    # environment must not slow down or break these tests.
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "asm-sqlalchemy")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'asm.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own."""
    schema = f"asm_test_{uuid.uuid4().hex[:16]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:5432/{PG_DB}?options=-csearch_path%3D{schema}"
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def drop_idle_connections() -> Callable[[str], int]:
    """Terminate the idle PostgreSQL connections of an ``application_name`` (as a server
    restart or an idle timeout would), not LISTEN ones; how many."""

    def drop(application_name: str) -> int:
        with pg_admin() as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                "AND state = 'idle' AND query NOT ILIKE 'LISTEN%%'",
                (application_name,),
            ).fetchall()
        return len(rows)

    return drop


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """Each database in turn."""
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlAlchemyStore]:
    async with SqlAlchemyStore(url) as opened:
        yield opened
