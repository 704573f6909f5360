"""The database schema: SQLAlchemy 2.0 typed models on a naming-convention MetaData.

Each row keeps the value's exact JSON (``body``) next to the columns that
queries filter, order and aggregate on, so a value read back is ``==`` to the
one stored while SQL can still search by agent, status, type, time and usage.
An event's body holds only what its columns do not (revision 0004): the
payload, and its time where the naive UTC column cannot give it back exactly.
Datetimes in columns are naive UTC (the same on SQLite and PostgreSQL); the
JSON keeps the original timezone.

The alembic migrations in ``migrations/versions`` build exactly this schema;
a test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "HEAD_REVISION",
    "LEAN_BODIES",
    "COMPATIBLE_BEHIND",
    "REVISIONS",
    "VERSION_TABLE",
    "Base",
    "EventHeadRow",
    "EventRow",
    "RunRow",
    "SessionRow",
    "metadata",
]

#: alembic's version table for asm (its own name, so asm can share a database).
VERSION_TABLE: Final = "asm_alembic_version"

#: Every revision in ``migrations/versions``, oldest first (a test checks them against alembic's).
REVISIONS: Final = ("0001", "0002", "0003", "0004")
#: The revision this code's models match.
HEAD_REVISION: Final = REVISIONS[-1]
#: Older revisions this code reads and writes as they are, because every later revision only
#: adds indexes (0003) or changes how event bodies are written (0004: this code reads both
#: forms, and writes the old one there): a database at one of them opens and works (slower
#: where an index is missing), and ``asm db current`` / ``asm db check`` say the upgrade is
#: pending. An older asm's database is never changed behind its owner's back, and one that
#: only lacks indexes or lean bodies need not stop anyone.
COMPATIBLE_BEHIND: Final = frozenset({"0002", "0003"})
#: The revision from which event bodies are lean (``{"data": ...}``: the columns hold the
#: envelope); a database at an older one gets whole events as bodies, which an older asm reads.
LEAN_BODIES: Final = "0004"

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(100)


class Base(DeclarativeBase):
    """Declarative base of asm's tables."""

    metadata = metadata


class SessionRow(Base):
    """One :class:`asm.Session`."""

    __tablename__ = "asm_sessions"
    # Revision 0003: one index per filter of the list, each ending in its order
    # (created_at DESC, id DESC), so a filtered page reads its own rows and stops.
    __table_args__ = (
        Index("ix_asm_sessions_status_agent_created", "status", "agent_id", "created_at", "id"),
        Index("ix_asm_sessions_agent_created", "agent_id", "created_at", "id"),
        Index("ix_asm_sessions_status_created", "status", "created_at", "id"),
        Index("ix_asm_sessions_provider_created", "provider", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    parent_session_id: Mapped[str | None] = mapped_column(ID)
    body: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    """One :class:`asm.Run`, with its usage and the process that executes it."""

    __tablename__ = "asm_runs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ID, index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    provider: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime())
    body: Mapped[str] = mapped_column(Text)
    # Added by revision 0002: usage for aggregates, and the owner for recovery.
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cost_usd: Mapped[float | None] = mapped_column(Float)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)


class EventRow(Base):
    """One stored :class:`asm.Event`; ``(session_id, seq)`` is its place in the log."""

    __tablename__ = "asm_events"
    __table_args__ = (Index("ix_asm_events_type_at", "type", "at"),)

    session_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(ID, unique=True)
    run_id: Mapped[str | None] = mapped_column(ID)
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime())
    provider: Mapped[str | None] = mapped_column(String(100))
    schema_version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)


class EventHeadRow(Base):
    """The last seq given out per session: the row every append locks to
    number its events, so seqs are gap-free across processes."""

    __tablename__ = "asm_event_heads"

    session_id: Mapped[str] = mapped_column(ID, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
