"""``asm db check``: the integrity of a session database (private).

What is checked, on SQLite and PostgreSQL alike unless said:

- SQLite only: ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``;
- the schema is at the newest revision this asm-sqlalchemy knows;
- every run and every event belongs to a stored session;
- each session's event log is numbered 1, 2, 3, ... with no seq missing (a range an
  ``events_compacted`` marker stands for is not missing) and none twice, and its seq
  head (the last seq given out) is not behind its last event;
- no run is ``running`` while the process that owns it is dead (``asm db recover``
  marks such runs failed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs
import trio
from sqlalchemy import URL, Connection, create_engine, func, select

from asm.events import EventsCompacted, EventType
from asm.model import ProcessIdentity, RunOwner
from asm.owners import owner_state
from asm.states import RunStatus
from asm_sqlalchemy import _migrations
from asm_sqlalchemy._codec import ROW_COLUMNS
from asm_sqlalchemy._engine import database_errors, mask_url, normalize_url
from asm_sqlalchemy._rows import decode_run, decode_stored
from asm_sqlalchemy._schema import EventHeadRow, EventRow, RunRow, SessionRow

__all__ = ["Problem", "check_database", "describe"]

_SESSIONS: Final = SessionRow.__table__
_RUNS: Final = RunRow.__table__
_EVENTS: Final = EventRow.__table__
_HEADS: Final = EventHeadRow.__table__
#: The most problems of one kind listed one by one (the rest are counted).
MAX_LISTED: Final = 20


@attrs.frozen
class Problem:
    """One thing wrong with the database: its kind and a sentence saying what and where."""

    kind: str
    message: str


async def check_database(url: str | URL) -> list[Problem]:
    """Every problem :mod:`asm_sqlalchemy._check` finds in the database at ``url``
    (``[]``: it is sound). The database is only read; a SQLite file that does not
    exist is a problem, not created."""
    parsed = normalize_url(url)
    return await trio.to_thread.run_sync(_check, parsed)


def _check(url: URL) -> list[Problem]:
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        if not Path(url.database).expanduser().is_file():
            return [Problem("missing", f"no SQLite database at {url.database}")]
    engine = create_engine(url)
    try:
        with database_errors(url, f"checking {mask_url(url)}"), engine.connect() as conn:
            problems = _schema(conn)
            if problems:
                return problems  # the rest reads asm's tables
            if url.get_backend_name() == "sqlite":
                problems += _sqlite(conn)
            problems += _orphans(conn)
            problems += _seqs(conn)
            problems += _stuck_runs(conn)
            return problems
    finally:
        engine.dispose()


def _schema(conn: Connection) -> list[Problem]:
    revision = _migrations.current_revision(conn)
    head = _migrations.head_revision()
    if revision == head:
        return []
    if revision is None:
        return [Problem("schema", "the database has no asm tables; run `asm db upgrade` (or any asm command) first")]
    return [Problem("schema", f"the schema is at revision {revision}, not {head}; run `asm db upgrade`")]


def _sqlite(conn: Connection) -> list[Problem]:
    problems = []
    integrity = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check").all()]
    if integrity != ["ok"]:
        problems += [Problem("integrity", f"SQLite integrity_check: {line}") for line in integrity[:MAX_LISTED]]
    for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check").all()[:MAX_LISTED]:
        problems.append(Problem("foreign_key", f"SQLite foreign_key_check: {table} row {rowid} refers to no {parent}"))
    return problems


def _orphans(conn: Connection) -> list[Problem]:
    problems = []
    known = select(_SESSIONS.c.id)
    runs = conn.execute(
        select(_RUNS.c.id, _RUNS.c.session_id).where(_RUNS.c.session_id.not_in(known)).limit(MAX_LISTED)
    ).all()
    problems += [
        Problem("orphan", f"run {run} belongs to session {session}, which is not stored") for run, session in runs
    ]
    events = conn.execute(
        select(_EVENTS.c.session_id, func.count())
        .where(_EVENTS.c.session_id.not_in(known))
        .group_by(_EVENTS.c.session_id)
        .limit(MAX_LISTED)
    ).all()
    problems += [
        Problem("orphan", f"{count} event(s) belong to session {session}, which is not stored")
        for session, count in events
    ]
    return problems


def _seqs(conn: Connection) -> list[Problem]:
    """Gaps and duplicates in each session's seqs, and seq heads behind their logs."""
    problems = []
    per_session = conn.execute(
        select(
            _EVENTS.c.session_id,
            func.count(),
            func.count(func.distinct(_EVENTS.c.seq)),
            func.min(_EVENTS.c.seq),
            func.max(_EVENTS.c.seq),
        ).group_by(_EVENTS.c.session_id)
    ).all()
    for session, count, distinct, low, high in per_session:
        if count != distinct:
            problems.append(Problem("seq_duplicate", f"session {session}: {count - distinct} seq(s) stored twice"))
        if low != 1 or high != distinct:
            missing = _missing(conn, session, high)
            if missing:
                problems.append(Problem("seq_gap", f"session {session}: seq {_ranges(missing)} missing (of 1..{high})"))
    heads = conn.execute(
        select(_HEADS.c.session_id, _HEADS.c.last_seq, func.max(_EVENTS.c.seq))
        .join(_EVENTS, _EVENTS.c.session_id == _HEADS.c.session_id)
        .group_by(_HEADS.c.session_id, _HEADS.c.last_seq)
        .having(func.max(_EVENTS.c.seq) > _HEADS.c.last_seq)
    ).all()
    problems += [
        Problem("seq_head", f"session {session}: the seq head says {head} but events go up to {top}")
        for session, head, top in heads
    ]
    return problems


def _missing(conn: Connection, session: str, high: int) -> list[int]:
    """The seqs from 1 to ``high`` that session ``session`` lacks and no compaction marker explains."""
    seqs = {row[0] for row in conn.execute(select(_EVENTS.c.seq).where(_EVENTS.c.session_id == session))}
    markers = conn.execute(
        select(*(_EVENTS.c[name] for name in ROW_COLUMNS.split(", "))).where(
            _EVENTS.c.session_id == session, _EVENTS.c.type == EventType.EVENTS_COMPACTED.value
        )
    ).all()
    for row in markers:
        data = decode_stored(row).data
        if isinstance(data, EventsCompacted):
            seqs.update(range(data.first_seq, data.last_seq + 1))
    return [seq for seq in range(1, high + 1) if seq not in seqs]


def _ranges(seqs: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (the first few ranges)."""
    spans: list[tuple[int, int]] = []
    for seq in seqs:
        if spans and spans[-1][1] == seq - 1:
            spans[-1] = (spans[-1][0], seq)
        else:
            spans.append((seq, seq))
    shown = [f"{a}-{b}" if a != b else str(a) for a, b in spans[:MAX_LISTED]]
    return ", ".join(shown) + (f" and {len(spans) - MAX_LISTED} more ranges" if len(spans) > MAX_LISTED else "")


def _stuck_runs(conn: Connection) -> list[Problem]:
    rows = conn.execute(
        select(_RUNS.c.id, _RUNS.c.body, _RUNS.c.owner_host, _RUNS.c.owner_pid).where(
            _RUNS.c.status == RunStatus.RUNNING.value
        )
    ).all()
    problems = []
    for ident, body, host, pid in rows:
        owner = decode_run(ident, body).owner or RunOwner(host or "?", ProcessIdentity(pid or 0))
        if owner_state(owner) == "dead":
            problems.append(
                Problem(
                    "stuck_run",
                    f"run {ident} is running, but the process that owns it ({owner.describe()}) is gone; "
                    "`asm db recover` marks it failed",
                )
            )
    return problems


def describe(problems: list[Problem], url: URL) -> list[str]:
    """The lines ``asm db check`` prints."""
    if not problems:
        return [f"{mask_url(url)}: ok (integrity, schema, seqs, owners of running runs)"]
    lines = [f"{problem.kind}: {problem.message}" for problem in problems]
    lines.append(f"{mask_url(url)}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    return lines
