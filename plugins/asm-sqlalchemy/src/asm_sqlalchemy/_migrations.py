"""Schema versions: create-and-stamp, check, upgrade, current (private; all sync).

The alembic environment ships inside the package (``migrations/``) and is
configured from this file, with its own version table (``asm_alembic_version``),
so asm can live in a database that has other tables and other alembic histories.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, select, text

from asm import AsmError
from asm.serde import event_to_json
from asm_sqlalchemy._codec import ROW_COLUMNS, decode_row, encode_event_body
from asm_sqlalchemy._engine import WRITE, mask_url
from asm_sqlalchemy._rows import decode_stored
from asm_sqlalchemy._schema import COMPATIBLE_BEHIND, HEAD_REVISION, LEAN_BODIES, REVISIONS, VERSION_TABLE, metadata

_LOG: Final = logging.getLogger("asm.sqlalchemy")

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "lean_bodies",
    "rewrite_event_bodies",
    "upgrade",
]

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
    upgrade``), unless all it lacks is indexes or lean bodies (:data:`COMPATIBLE_BEHIND`:
    it is used as it is, and the pending upgrade logged); one newer than this code raises
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
    if revision in COMPATIBLE_BEHIND:
        _LOG.warning(
            "the asm schema of %s is at revision %s: it works as it is, and `asm db upgrade` to %s "
            "makes it faster (indexes, lean event bodies)",
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


def lean_bodies(revision: str) -> bool:
    """Whether a database at ``revision`` gets lean event bodies (older asm cannot read them)."""
    return revision in REVISIONS and REVISIONS.index(revision) >= REVISIONS.index(LEAN_BODIES)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database to ``revision`` (creating asm's tables if there are
    none); return the revisions (before, after). At :data:`LEAN_BODIES` or later,
    the event bodies still whole are then rewritten (:func:`rewrite_event_bodies`)."""
    from alembic import command

    with engine.connect().execution_options(**{WRITE: True}) as connection:
        with connection.begin():
            _lock(connection)
            before = current_revision(connection)
        command.upgrade(alembic_config(connection), revision)
        if connection.in_transaction():
            connection.commit()
        after = current_revision(connection)
    if after is not None and lean_bodies(after):
        rewritten, kept = collections.deque(rewrite_event_bodies(engine), maxlen=1).pop()
        if rewritten or kept:
            _LOG.info(
                "%s: %d event bodies rewritten lean, %d left whole (unreadable, or not matching their row)",
                mask_url(engine.url),
                rewritten,
                kept,
            )
    return before, after


#: Rows per transaction of :func:`rewrite_event_bodies`.
REWRITE_BATCH: Final = 1000
#: How every whole-event body begins (asm.serde writes ``id`` first; lean ones begin ``{"data":``).
_WHOLE: Final = '{"id":'


def rewrite_event_bodies(engine: Engine, *, batch: int = REWRITE_BATCH) -> Iterator[tuple[int, int]]:
    """Rewrite the whole-event bodies written before revision 0004 as lean ones, ``batch``
    rows per transaction in primary-key order, and yield the running counts (rewritten,
    left whole) after each commit.

    Online: between batches, appends, reads and compactions go on (readers take both
    forms). A row is rewritten only if its lean form reads back as the very event its
    whole body held (the same public JSON, byte for byte), and only if it still holds the
    body read (``body = old`` in the UPDATE: a row compacted meanwhile is left to its
    new owner); a body that is corrupt, or not its row's, is left whole, as it was.
    Each pass starts from the beginning, so a pass stopped half-way is finished by the next.
    """
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    find = (
        f"SELECT {ROW_COLUMNS} FROM asm_events WHERE (session_id, seq) > ({mark}, {mark}) "
        f"AND substr(body, 1, {len(_WHOLE)}) = {mark} ORDER BY session_id, seq LIMIT {mark}"
    )
    change = f"UPDATE asm_events SET body = {mark} WHERE session_id = {mark} AND seq = {mark} AND body = {mark}"
    after: tuple[str, int] = ("", 0)  # below every key: seqs start at 1
    rewritten = kept = 0
    while True:
        with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
            rows = connection.exec_driver_sql(find, (*after, _WHOLE, batch)).all()
            updates = []
            for row in rows:
                lean = _lean_body(tuple(row))
                if lean is None:
                    kept += 1
                else:
                    updates.append((lean, row[0], row[1], row[8]))
            if updates:
                rewritten += connection.exec_driver_sql(change, updates).rowcount
        yield rewritten, kept
        if len(rows) < batch:
            return
        after = (rows[-1][0], rows[-1][1])


def _lean_body(row: tuple[object, ...]) -> str | None:
    """The lean body of the event a whole body holds, if it reads back as that very event."""
    try:
        event = decode_stored(row)
        lean = encode_event_body(event, event.at.isoformat())
        again = decode_row((*row[:8], lean))
    except AsmError:
        return None
    if event_to_json(again) != event_to_json(event) or again != event:
        return None  # the columns say otherwise than the body: leave the row as it is
    return lean
