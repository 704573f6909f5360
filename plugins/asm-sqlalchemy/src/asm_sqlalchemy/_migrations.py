"""Schema versions: create-and-stamp, check, upgrade, current (private; all sync).

The alembic environment ships inside the package (``migrations/``) and is
configured from this file, with its own version table (``asm_alembic_version``),
so asm can live in a database that has other tables and other alembic histories.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, select, text

from asm import AsmError
from asm_sqlalchemy._engine import WRITE, mask_url
from asm_sqlalchemy._schema import HEAD_REVISION, INDEX_ONLY_BEHIND, REVISIONS, VERSION_TABLE, metadata

_LOG: Final = logging.getLogger("asm.sqlalchemy")

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "ensure_schema", "head_revision", "upgrade"]

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"

#: PostgreSQL advisory lock key serializing schema creation between processes.
_SCHEMA_LOCK: Final = 0x61736D5F736368  # "asm_sch"


# Opening a store reads and stamps the version table with plain SQL (the
# table alembic would make), so that alembic is imported only to migrate.
_VERSIONS = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for asm's migrations, bound to ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return HEAD_REVISION


def current_revision(connection: Connection) -> str | None:
    """The database's revision (``None``: asm's tables were never created there)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    versions = list(connection.execute(select(_VERSIONS.c.version_num)).scalars())
    if len(versions) > 1:
        raise AsmError("storage_error", f"{VERSION_TABLE} has several revisions ({', '.join(versions)}); repair it")
    return versions[0] if versions else None


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})


def ensure_schema(engine: Engine, *, create: bool = True) -> str:
    """Make sure the database has asm's current schema and return its revision.

    A database without asm's tables is created and stamped at the head
    revision (in one transaction, safe when several processes open it at
    once). An older one raises ``migration_required`` (run ``asm db
    upgrade``), unless all it lacks is indexes (:data:`INDEX_ONLY_BEHIND`: it is
    used as it is, and the pending upgrade logged); one newer than this code raises
    ``storage_error``.
    """
    head = head_revision()
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        _lock(connection)
        revision = current_revision(connection)
        if revision is None:
            existing = set(inspect(connection).get_table_names()) & set(metadata.tables)
            if existing:
                raise AsmError(
                    "storage_error",
                    f"{mask_url(engine.url)} has asm tables ({', '.join(sorted(existing))}) but no "
                    f"{VERSION_TABLE} table; it was not made by asm-sqlalchemy, or was damaged. "
                    "Use another database or restore the version table",
                )
            if not create:
                raise AsmError(
                    "migration_required",
                    f"{mask_url(engine.url)} has no asm schema yet; run `asm db upgrade` to create it",
                )
            metadata.create_all(connection)
            _VERSIONS.create(connection, checkfirst=True)
            connection.execute(_VERSIONS.insert().values(version_num=head))
            return head
    if revision == head:
        return revision
    if revision in INDEX_ONLY_BEHIND:
        _LOG.warning(
            "the asm schema of %s is at revision %s: it works, and `asm db upgrade` to %s adds indexes",
            mask_url(engine.url),
            revision,
            head,
        )
        return revision
    if revision in REVISIONS:
        raise AsmError(
            "migration_required",
            f"the asm schema of {mask_url(engine.url)} is at revision {revision}, older than this "
            f"asm-sqlalchemy's {head}; back up the database, then run `asm db upgrade`",
            details={"current": revision, "head": head},
        )
    raise AsmError(
        "storage_error",
        f"the asm schema of {mask_url(engine.url)} is at revision {revision}, which this asm-sqlalchemy "
        f"(head {head}) does not know: a newer version wrote it; upgrade asm-sqlalchemy",
        details={"current": revision, "head": head},
    )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database to ``revision`` (creating asm's tables if there are
    none); return the revisions (before, after)."""
    from alembic import command

    with engine.connect().execution_options(**{WRITE: True}) as connection:
        with connection.begin():
            _lock(connection)
            before = current_revision(connection)
        command.upgrade(alembic_config(connection), revision)
        if connection.in_transaction():
            connection.commit()
        return before, current_revision(connection)
