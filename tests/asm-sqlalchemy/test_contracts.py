"""The asm.testing SessionStore contract on a SQLite file and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asm_sqlalchemy import SqlAlchemyStore

from asm.testing import SessionStoreContract


class TestSqliteContract(SessionStoreContract):
    @pytest.fixture
    async def store(self, sqlite_url: str) -> AsyncIterator[SqlAlchemyStore]:
        async with SqlAlchemyStore(sqlite_url) as store:
            yield store


class TestPostgresContract(SessionStoreContract):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[SqlAlchemyStore]:
        async with SqlAlchemyStore(pg_url) as store:
            yield store


class TestSqliteContractBatched(SessionStoreContract):
    """Group commit with a delay and small batches: the same guarantees."""

    @pytest.fixture
    async def store(self, sqlite_url: str) -> AsyncIterator[SqlAlchemyStore]:
        async with SqlAlchemyStore(sqlite_url, batch_max_events=7, batch_delay=0.001) as store:
            yield store
