"""What asm-sqlalchemy keeps private: a new database and its directory are
readable by their owner only, and no URL password is shown anywhere."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from asm_sqlalchemy import SqlAlchemyStore, create_sqlalchemy_store, create_sqlite_store

from asm import AsmError, Event, Session
from asm.events import MessageStreamed


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def write_something(store: SqlAlchemyStore) -> None:
    await store.save_session(Session(id="ses_p", agent_id="a"))
    await store.append_events([Event.new(MessageStreamed("private"), session_id="ses_p")])


async def test_the_default_database_and_its_directory_are_the_owners_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: left alone, files would be world-readable
    try:
        async with create_sqlite_store({}) as store:
            await write_something(store)
            data_dir = tmp_path / "xdg-data" / "asm"  # XDG_DATA_HOME is set by conftest
            files = sorted(p.name for p in data_dir.iterdir())
            assert mode(data_dir) == 0o700
            assert "asm.db" in files and "asm.db-wal" in files
            for name in files:
                assert mode(data_dir / name) == 0o600, name
    finally:
        os.umask(old)


async def test_a_database_in_a_new_directory_is_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "runs.db"
    async with SqlAlchemyStore(f"sqlite:///{path}") as store:
        await write_something(store)
    assert mode(path.parent) == 0o700 and mode(path) == 0o600


async def test_an_existing_database_keeps_its_mode(tmp_path: Path, sqlite_url: str) -> None:
    async with SqlAlchemyStore(sqlite_url) as store:
        await write_something(store)
    path = tmp_path / "asm.db"
    path.chmod(0o640)
    async with SqlAlchemyStore(sqlite_url) as store:
        await write_something(store)
    assert mode(path) == 0o640


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret-pw@127.0.0.1:notaport/x",  # not a URL (the port): was a raw ValueError
        "mysql://alice:s3cret-pw@db/x",  # not a supported database
    ],
)
def test_a_bad_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(AsmError) as caught:
        create_sqlalchemy_store({"url": url})
    assert caught.value.code == "invalid_config"
    assert "s3cret-pw" not in caught.value.message and "s3cret-pw" not in repr(caught.value.details)
