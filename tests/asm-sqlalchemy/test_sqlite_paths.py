"""SQLite paths as users write them: a URL that names no file is echoed as written, a
path that cannot be a database is one invalid_config line, a missing directory is
created and logged once, and a file SQLite cannot open does not mention a server."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from asm_sqlalchemy import SqlAlchemyStore
from sqlalchemy import make_url

from asm import AsmError
from asm.runtime import open_runtime


async def open_error(**overrides: object) -> AsmError:
    with pytest.raises(AsmError) as caught:
        async with open_runtime(provider="echo", **overrides):
            pass
    return caught.value


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///file:x?mode=memory"])
async def test_a_url_that_names_no_file_is_echoed_as_written(url: str) -> None:
    error = await open_error(store="sqlalchemy", **{"stores.sqlalchemy.url": url})

    assert error.code == "invalid_config"
    assert f"{url} is not a database file; give a path (sqlite:///asm.db)" in error.message


async def test_a_directory_as_the_database_is_invalid_config(tmp_path: Path) -> None:
    error = await open_error(store="sqlite", **{"stores.sqlite.path": str(tmp_path)})

    assert (error.code, error.message) == (
        "invalid_config",
        f"the SQLite database {tmp_path} is a directory; give the path of a file (e.g. {tmp_path / 'asm.db'})",
    )


async def test_a_path_where_no_directory_can_be_made_is_invalid_config(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    database = tmp_path / "a-file" / "asm.db"

    error = await open_error(store="sqlite", **{"stores.sqlite.path": str(database)})

    assert error.code == "invalid_config"
    assert error.message == (
        f"cannot create the SQLite database {database}: {tmp_path / 'a-file'} is a file, not a directory; "
        "choose another path"
    )


async def test_a_directory_that_cannot_be_made_is_invalid_config() -> None:
    error = await open_error(store="sqlite", **{"stores.sqlite.path": "/proc/asm-no-such/asm.db"})

    assert (error.code, error.message) == (
        "invalid_config",
        "cannot create the SQLite database /proc/asm-no-such/asm.db: No such file or directory; "
        "choose a path in a directory you can write to",
    )


async def test_a_missing_directory_is_created_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database = tmp_path / "new" / "deeper" / "asm.db"
    caplog.set_level(logging.INFO, logger="asm")

    for _ in range(2):
        async with SqlAlchemyStore(f"sqlite:///{database}") as store:
            await store.health_check()

    assert database.is_file()
    created = [r.getMessage() for r in caplog.records if r.name == "asm.sqlalchemy" and "created" in r.getMessage()]
    assert created == [f"created the directory {database.parent} for the SQLite database {database}"]


def test_sqlite_that_cannot_open_its_file_does_not_mention_a_server(tmp_path: Path) -> None:
    from asm_sqlalchemy._engine import database_errors

    url = make_url(f"sqlite+pysqlite:///{tmp_path / 'asm.db'}")
    with pytest.raises(AsmError) as caught, database_errors(url, "opening the database"):
        raise sqlite3.OperationalError("unable to open database file")

    assert caught.value.code == "storage_connection_failed"
    assert caught.value.message == (
        f"opening the database: cannot open the SQLite database {tmp_path / 'asm.db'}: unable to open database "
        "file; check that it is a file (or a path to create one) in a directory you can write to"
    )
