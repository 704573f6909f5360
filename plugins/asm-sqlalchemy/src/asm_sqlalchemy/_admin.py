"""Schema administration without opening a store (private): what ``asm db`` runs."""

from __future__ import annotations

import logging

import trio
from sqlalchemy import URL

from asm_sqlalchemy import _migrations
from asm_sqlalchemy._engine import create_store_engine, database_errors, normalize_url

__all__ = ["current", "upgrade"]

_LOG = logging.getLogger("asm.sqlalchemy.admin")


async def upgrade(url: str | URL, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database at ``url`` to ``revision`` (default: the newest),
    creating asm's tables if it has none; return the revisions (before, after).

    Back up the database first; run it while no older asm uses it (the rewrite of event
    bodies to 0004 runs online, beside this asm's processes)."""
    parsed = normalize_url(url)

    def run() -> tuple[str | None, str | None]:
        engine = create_store_engine(parsed, pool_size=1)
        try:
            with database_errors(parsed, "upgrading the schema"):
                before, after = _migrations.upgrade(engine, revision)
            _LOG.info("%s: schema at revision %s (was %s)", parsed.render_as_string(), after, before or "none")
            return before, after
        finally:
            engine.dispose()

    return await trio.to_thread.run_sync(run)


async def current(url: str | URL) -> tuple[str | None, str]:
    """The database's schema revision (``None`` if asm never created its
    tables there) and the newest revision this code knows."""
    parsed = normalize_url(url)

    def run() -> str | None:
        engine = create_store_engine(parsed, pool_size=1)
        try:
            with database_errors(parsed, "reading the schema revision"), engine.connect() as connection:
                return _migrations.current_revision(connection)
        finally:
            engine.dispose()

    return await trio.to_thread.run_sync(run), _migrations.head_revision()
