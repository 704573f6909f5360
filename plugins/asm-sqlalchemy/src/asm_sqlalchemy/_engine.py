"""Engines for SQLite and PostgreSQL, SQLite pragmas, and database errors as AsmErrors (private)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from asm import AsmError
from asm.redaction import mask_url as mask_url_text
from asm_sqlalchemy._paths import default_sqlite_path as default_sqlite_path

__all__ = [
    "WRITE",
    "create_store_engine",
    "database_errors",
    "default_sqlite_path",
    "mask_url",
    "normalize_url",
    "ping_idle_connections",
]

#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE: Final = "asm_write"

_LOG: Final = logging.getLogger("asm.sqlalchemy")
#: Directories created for a database file in this process (each is logged once).
_CREATED: set[Path] = set()


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pick asm's drivers: ``postgresql://`` means psycopg 3,
    ``sqlite://`` the standard library. Other databases are ``invalid_config``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise AsmError(
            "invalid_config",
            f"{mask_url_text(str(url))!r} is not a database URL; use sqlite:///path/to/asm.db or "
            "postgresql+psycopg://user:password@host:5432/dbname",
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise AsmError(
                "invalid_config",
                f"database driver {parsed.drivername!r} is not supported; use postgresql+psycopg:// (psycopg 3)",
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise AsmError("invalid_config", f"database driver {parsed.drivername!r} is not supported; use sqlite://")
        if parsed.database in (None, "", ":memory:") or (parsed.database or "").startswith("file:"):
            written = mask_url_text(url) if isinstance(url, str) else mask_url(parsed)  # as the user wrote it
            raise AsmError(
                "invalid_config",
                f"{written} is not a database file; give a path (sqlite:///asm.db), "
                "or use the 'memory' store for a database that is not kept",
            )
        return parsed.set(drivername="sqlite+pysqlite")
    raise AsmError(
        "invalid_config",
        f"database {backend!r} is not supported by asm-sqlalchemy; use SQLite (sqlite:///asm.db) or "
        "PostgreSQL (postgresql+psycopg://...)",
    )


def mask_url(url: URL) -> str:
    """``url`` as text with the password hidden (asm's one rule for every URL it shows)."""
    return mask_url_text(url.render_as_string(hide_password=False))


def create_store_engine(
    url: URL,
    *,
    pool_size: int,
    synchronous: str = "NORMAL",
    busy_timeout: float = 60.0,
    autocheckpoint: bool = True,
) -> Engine:
    """A sync engine for ``url``. SQLite files get WAL mode, ``synchronous``,
    a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for write
    transactions (so concurrent writers queue instead of failing);
    ``autocheckpoint=False`` leaves WAL checkpoints to the caller
    (see :mod:`asm_sqlalchemy._checkpoint`)."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        _create_private(Path(url.database).expanduser())
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
        )
        _sqlite_events(engine, synchronous=synchronous, busy_timeout=busy_timeout, autocheckpoint=autocheckpoint)
        return engine
    if importlib.util.find_spec("psycopg") is None:
        raise AsmError(
            "dependency_not_available",
            f"{mask_url(url)} needs psycopg, PostgreSQL's driver: pip install 'asm-sqlalchemy[postgres]'",
        )
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    ping_idle_connections(engine)
    return engine


#: Seconds a pooled PostgreSQL connection may sit idle before it is checked on checkout.
IDLE_PING_S: Final = 1.0


def ping_idle_connections(engine: Engine, idle: float | None = None) -> None:
    """Check a pooled connection with a round trip before it is used only when it sat
    in the pool for more than ``idle`` seconds (default :data:`IDLE_PING_S`); a dead
    one is replaced by a new connection (SQLAlchemy's custom pessimistic disconnect
    handling).

    A server restart or an idle timeout drops connections that sit idle; one in steady
    use is not pinged (``pool_pre_ping`` costs a round trip on every checkout: 25 of a
    distributed run's 43 transactions). For plugins that keep an engine of their own on
    the store's PostgreSQL database (asm-celery's ledger)::

        engine = create_engine(url)
        ping_idle_connections(engine)
    """

    after = IDLE_PING_S if idle is None else idle

    @event.listens_for(engine, "checkin")
    def checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:  # noqa: ARG001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:  # noqa: ARG001
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool invalidates the connection and checks out a new one.
            raise DisconnectionError(f"a pooled connection was lost: {exc}") from exc


def _sqlite_events(engine: Engine, *, synchronous: str, busy_timeout: float, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Transactions are begun explicitly below (pysqlite's own BEGIN is deferred).
        del record
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA temp_store = MEMORY")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint = 0")  # the store checkpoints in a thread of its own
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def database_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn database failures inside the block into ``AsmError``s whose
    message names what was being done and the URL, never the password: those
    SQLAlchemy raises, and those of the drivers' own cursors, which the hot
    paths use directly."""
    try:
        yield
    except AsmError:
        raise
    except NoSuchModuleError as exc:
        raise AsmError("dependency_not_available", f"{doing}: {exc}; install the database driver") from None
    except DBAPIError as exc:
        raise _driver_failure(exc.orig or exc, url, doing, invalidated=exc.connection_invalidated) from None
    except SQLAlchemyError as exc:
        raise AsmError(
            "storage_error",
            f"{doing} on {mask_url(url)} failed: {_scrub(str(exc), url)}",
            details={"url": mask_url(url)},
        ) from None
    except OSError as exc:
        raise AsmError(
            "storage_error", f"{doing} on {mask_url(url)} failed: {exc}", details={"url": mask_url(url)}
        ) from None
    except UnicodeEncodeError as exc:
        # Lone surrogates (bytes that were not UTF-8): the SessionManager replaces them
        # before storing; a direct caller is told to.
        raise AsmError(
            "validation_error",
            f"{doing}: the text has characters that are not valid Unicode ({exc.reason}); "
            "replace them with U+FFFD first (a SessionManager does so for you)",
        ) from None
    except Exception as exc:
        if not _is_driver_error(exc):
            raise
        raise _driver_failure(exc, url, doing, invalidated=False) from None


def _is_driver_error(exc: BaseException) -> bool:
    # psycopg is looked up, not imported: if it was never imported, none of its errors can occur.
    psycopg = sys.modules.get("psycopg")
    return isinstance(exc, sqlite3.Error) or (psycopg is not None and isinstance(exc, psycopg.Error))


def _driver_failure(orig: BaseException, url: URL, doing: str, *, invalidated: bool) -> AsmError:
    text = str(orig).strip()
    message = _scrub(text.splitlines()[0] if text else repr(orig), url)
    if url.get_backend_name() == "sqlite" and _is_connection_error(orig):
        return AsmError(
            "storage_connection_failed",
            f"{doing}: cannot open the SQLite database {url.database}: {message}; check that it is a file "
            "(or a path to create one) in a directory you can write to",
            details={"url": mask_url(url)},
        )
    if invalidated or _is_connection_error(orig):
        return AsmError(
            "storage_connection_failed",
            f"{doing}: cannot connect to {mask_url(url)}: {message}; check the URL and that the server is up",
            details={"url": mask_url(url)},
        )
    return AsmError("storage_error", f"{doing} on {mask_url(url)} failed: {message}", details={"url": mask_url(url)})


def _is_connection_error(orig: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")
    if (
        psycopg is not None
        and isinstance(orig, psycopg.OperationalError)
        and orig.sqlstate in (None, "08001", "08006", "08004", "57P03")
    ):
        return True
    return isinstance(orig, sqlite3.OperationalError) and "unable to open database" in str(orig)


def _create_private(database: Path) -> None:
    """Create a new SQLite file, and its directory if missing, readable by their
    owner only (0600, 0700): events hold prompts and output. SQLite gives its WAL
    and shared-memory files the database's mode. Existing ones are left as they are.
    A directory created is logged (``asm.sqlalchemy``, INFO) once; a path that cannot be
    a database file is ``invalid_config``."""
    where = f"the SQLite database {database}"
    if database.is_dir():
        raise AsmError(
            "invalid_config", f"{where} is a directory; give the path of a file (e.g. {database / 'asm.db'})"
        )
    blocking = next((parent for parent in database.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise AsmError(
            "invalid_config",
            f"cannot create {where}: {blocking} is a file, not a directory; choose another path",
            details={"path": str(database)},
        )
    try:
        if not database.parent.is_dir():
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if database.parent not in _CREATED:
                _CREATED.add(database.parent)
                _LOG.info("created the directory %s for %s", database.parent, where)
        with contextlib.suppress(FileExistsError):
            # an empty file is an empty database
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise AsmError(
            "invalid_config",
            f"cannot create {where}: {exc.strerror}; choose a path in a directory you can write to",
            details={"path": str(database)},
        ) from None


def _scrub(text: str, url: URL) -> str:
    text = mask_url_text(text)
    if url.password:
        text = text.replace(str(url.password), "***")
    return text
