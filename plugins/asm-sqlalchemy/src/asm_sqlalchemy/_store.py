"""The SQLAlchemy session store: SessionStore + QueryAPI + Maintenance (private).

Every database call is synchronous SQLAlchemy run in a worker thread
(``trio.to_thread.run_sync``) behind one ``trio.CapacityLimiter``. Appends are
group-committed: the first appender to find no commit in progress becomes the
leader and writes every append waiting at that moment in one transaction;
the others get their stored events back when that commit has landed.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

import attrs
import trio
from sqlalchemy import URL, Connection, Engine, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import PoolProxiedConnection

from asm import AsmError, ErrorInfo, Event, Page, ProviderError, Run, RunStatus, Session, SessionStatus
from asm.events import EventType, RunFailed, SessionFailed, sequence_in_place
from asm.model import ProcessIdentity, RunOwner, utcnow
from asm.owners import owner_state, stop_orphans
from asm.stores import (
    MAX_SEQ,
    Compaction,
    CompactRange,
    LogRow,
    PromptLimiter,
    claim_refused,
    compaction_batches,
    fork_by_copy,
    parse_event_types,
    plan_compaction,
    validate_page_args,
)
from asm_sqlalchemy._checkpoint import Checkpointer, wal_bytes
from asm_sqlalchemy._codec import (
    PAGE_COLUMNS,
    PAGE_COLUMNS_PG,
    ROW_COLUMNS,
    at_in_column,
    encode_event_body,
    encode_event_json,
)
from asm_sqlalchemy._engine import WRITE, create_store_engine, database_errors, mask_url, normalize_url
from asm_sqlalchemy._migrations import ensure_schema, head_revision, lean_bodies
from asm_sqlalchemy._rows import (
    KEPT_PAGE,
    decode_events,
    decode_log,
    decode_run,
    decode_session,
    decode_stored,
    gc_paused,
    keep_built,
    naive_utc,
    run_row,
    session_row,
)
from asm_sqlalchemy._schema import EventHeadRow, EventRow, RunRow, SessionRow
from asm_sqlalchemy._wake import Waker, open_waker

__all__ = ["SqlAlchemyStore", "StoreStatistics"]

T = TypeVar("T")

_SESSIONS = cast(Table, SessionRow.__table__)
_RUNS = cast(Table, RunRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_HEADS = cast(Table, EventHeadRow.__table__)

#: Bound parameters per ``IN (...)`` lookup (SQLite allows 32766; stay well below).
_IN_CHUNK: Final = 900

_COLUMNS = "session_id, seq, id, run_id, type, at, provider, schema_version, body"
#: Rows per multi-row SQLite INSERT (at most 9 parameters each; SQLite allows at least 32766 per
#: statement). Multi-row statements rather than executemany: each statement lets go of the GIL
#: once instead of once per row, and while a run streams, the event loop's thread wants it back
#: after every one of those.
_SQLITE_ROWS_PER_INSERT: Final = 1000
#: INSERT texts kept, by row count (one for 1,000 rows is some 40 KB).
_SQL_CACHED: Final = 32
#: PostgreSQL appends are a COPY: psycopg formats each row in C, where an INSERT over arrays
#: built them in Python (about twice the cost per event).
_COPY_PG: Final = f"COPY asm_events ({_COLUMNS}) FROM STDIN"

#: Advance a session's head, returning its new last seq (one statement on both databases),
#: by the driver's placeholder.
_RESERVE_SQL: Final = {
    mark: f"INSERT INTO asm_event_heads (session_id, last_seq) VALUES ({mark}, {mark}) ON CONFLICT (session_id) "
    "DO UPDATE SET last_seq = asm_event_heads.last_seq + excluded.last_seq RETURNING last_seq"
    for mark in ("?", "%s")
}

#: PostgreSQL: every session's head of a commit advanced in one statement, in the lock order of
#: every writer (the ids' code points, as Python sorts them: no deadlocks), and one NOTIFY statement.
#: Also tells the sessions' waiters in other processes: a notification goes out at commit.
_RESERVE_PG: Final = (
    "WITH heads AS (INSERT INTO asm_event_heads (session_id, last_seq) SELECT s, c FROM "
    'unnest(%s::varchar[], %s::bigint[]) AS t(s, c) ORDER BY s COLLATE "C" ON CONFLICT (session_id) '
    "DO UPDATE SET last_seq = asm_event_heads.last_seq + excluded.last_seq RETURNING session_id, last_seq) "
    "SELECT session_id, last_seq, pg_notify('asm_events', session_id) FROM heads"
)

_STORED_PG: Final = f"SELECT {ROW_COLUMNS} FROM asm_events WHERE id = ANY(%b::varchar[])"

#: Text a deleted row stands for in the WAL (see ``_wrote``): the pages it sat on are
#: rewritten, about what inserting a streamed event wrote.
_DELETED_ROW_BYTES: Final = 300

#: ``EventType.X.value`` without the enum property lookup per event.
_TYPE_NAMES: Final = {event_type: event_type.value for event_type in EventType}

_SEARCH_SESSION_FILTERS: Final = frozenset({"agent_id", "status", "provider", "since", "until", "limit", "offset"})
_SEARCH_EVENT_FILTERS: Final = frozenset({"types", "text", "session_id", "run_id", "since", "until", "limit"})
_USAGE_FILTERS: Final = frozenset({"group_by", "agent_id", "provider", "model", "session_id", "since", "until"})
_GROUPS: Final = {"session": "session_id", "agent": "agent_id", "provider": "provider", "model": "model"}


@attrs.frozen
class StoreStatistics:
    """Counters of a store's group commit (see :meth:`SqlAlchemyStore.statistics`):
    transactions, ``append_events`` calls and events written, and the most
    events one transaction wrote."""

    commits: int
    appends: int
    events: int
    largest_commit: int

    @property
    def appends_per_commit(self) -> float:
        """How many ``append_events`` calls shared a transaction, on average."""
        return self.appends / self.commits if self.commits else 0.0


@attrs.define
class _Append:
    events: list[Event]
    #: the caller gave the events up (append_owned_events): they may be sequenced in place
    owned: bool = False
    #: called on the event loop's thread once the events are encoded (asm.ports.OwnedAppend)
    on_taken: Callable[[], object] | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    taken: bool = False
    result: list[Event] | None = None
    error: BaseException | None = None


class SqlAlchemyStore:
    """Sessions, runs and events in SQLite or PostgreSQL.

    Use it as an async context manager (``async with SqlAlchemyStore(url) as
    store``); it opens on first use otherwise, and :meth:`aclose` releases
    its connections. Opening checks the schema: a new database is created
    and stamped, an older one raises ``migration_required``.

    ``batch_max_events`` bounds how many events one group commit writes
    (a single larger ``append_events`` is still written whole);
    ``batch_delay`` is how long (seconds) a commit leader waits for more
    appends before writing (0: write what is waiting now; commits in progress
    already make later appends queue up). ``poll_interval`` is how often a
    SQLite waiter checks ``PRAGMA data_version`` for commits made by other
    processes (PostgreSQL waiters use LISTEN/NOTIFY instead).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        batch_max_events: int = 5000,
        batch_delay: float = 0.0,
        poll_interval: float = 0.05,
        max_threads: int = 8,
        synchronous: str = "NORMAL",
        create: bool = True,
    ) -> None:
        if batch_max_events < 1:
            raise AsmError("invalid_config", f"batch_max_events must be >= 1, not {batch_max_events}")
        if batch_delay < 0 or poll_interval <= 0:
            raise AsmError("invalid_config", "batch_delay must be >= 0 and poll_interval > 0 (seconds)")
        if max_threads < 1:
            raise AsmError("invalid_config", f"max_threads must be >= 1, not {max_threads}")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise AsmError("invalid_config", f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.url: URL = normalize_url(url)
        self.batch_max_events = batch_max_events
        self.batch_delay = batch_delay
        self.poll_interval = poll_interval
        self._synchronous = synchronous.upper()
        self._create = create
        self._max_threads = max_threads
        self._limiter = PromptLimiter(max_threads)
        self._engine: Engine | None = None
        #: Whether event bodies are written lean (the schema is at revision 0004 or later).
        self._lean = True
        self._open_lock = trio.Lock()
        self._closed = False
        self._commit_lock = trio.Lock()
        self._pending: list[_Append] = []
        #: the pooled connection SQLite appends use (see _writing), once there has been one
        self._writer: PoolProxiedConnection | None = None
        self._changed: dict[str, trio.Event] = {}
        self._waker: Waker | None = None
        self._checkpointer: Checkpointer | None = None
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._commits = 0
        self._appends = 0
        self._events = 0
        self._largest = 0

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @property
    def location(self) -> str:
        """Where the data is, for people: a SQLite file's path, else the URL with its password masked."""
        if self.dialect == "sqlite" and self.url.database:
            return self.url.database
        return mask_url(self.url)

    @property
    def _mark(self) -> str:
        """The driver's parameter placeholder in plain SQL text."""
        return "?" if self.dialect == "sqlite" else "%s"

    def __repr__(self) -> str:
        return f"SqlAlchemyStore({mask_url(self.url)!r})"

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> SqlAlchemyStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect and check (or create) the schema; idempotent."""
        await self._ready()

    async def _ready(self) -> Engine:
        if self._engine is not None:
            return self._engine
        if self._closed:
            raise AsmError("invalid_operation", f"{self!r} is closed; open a new store")
        async with self._open_lock:
            if self._engine is None:
                sqlite = self.dialect == "sqlite"
                engine = create_store_engine(
                    self.url, pool_size=self._max_threads, synchronous=self._synchronous, autocheckpoint=not sqlite
                )
                try:
                    revision = await self._thread(
                        lambda: ensure_schema(engine, create=self._create), "opening the database"
                    )
                except BaseException:
                    engine.dispose()
                    raise
                # An older revision's database may be shared with an older asm: its bodies stay whole.
                self._lean = lean_bodies(revision)
                self._waker = open_waker(engine, poll_interval=self.poll_interval)
                if sqlite:
                    assert engine.url.database is not None
                    self._checkpointer = Checkpointer(engine.url.database)
                self._engine = engine
        return self._engine

    async def aclose(self) -> None:
        """Release every connection; the store is unusable afterwards."""
        self._closed = True
        engine, self._engine = self._engine, None
        waker, self._waker = self._waker, None
        checkpointer, self._checkpointer = self._checkpointer, None
        writer, self._writer = self._writer, None
        if writer is not None:
            await trio.to_thread.run_sync(writer.close)
        if waker is not None:
            await trio.to_thread.run_sync(waker.close)
        if checkpointer is not None:
            await trio.to_thread.run_sync(checkpointer.close)
        if engine is not None:
            await trio.to_thread.run_sync(engine.dispose)

    async def _thread(self, fn: Callable[[], T], doing: str) -> T:
        url = self.url

        def call() -> T:
            with database_errors(url, doing):
                return fn()

        # trio takes any CapacityLimiter-like object; its annotation names the class.
        return await trio.to_thread.run_sync(call, limiter=cast(trio.CapacityLimiter, self._limiter))

    async def _run(self, fn: Callable[[Engine], T], doing: str) -> T:
        engine = await self._ready()
        return await self._thread(lambda: fn(engine), doing)

    def statistics(self) -> StoreStatistics:
        """Group-commit counters since the store was created."""
        return StoreStatistics(self._commits, self._appends, self._events, self._largest)

    # -- sessions and runs ---------------------------------------------------

    async def save_session(self, session: Session) -> None:
        """Insert or replace ``session``."""
        row = session_row(session)
        await self._run(lambda e: self._upsert(e, _SESSIONS, row), f"saving session {session.id}")

    def _upsert(self, engine: Engine, table: Table, row: dict[str, Any]) -> None:
        # Plain SQL text (the same on SQLite and PostgreSQL): a run saves its session and
        # itself several times on its critical path, and building and compiling an insert
        # construct per call cost more than executing it.
        sqlite = self.dialect == "sqlite"
        names = tuple(row)
        values = tuple(_sqlite_value(v) for v in row.values()) if sqlite else tuple(row.values())
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            conn.exec_driver_sql(_upsert_sql(table.name, names, self._mark), values)
        self._wrote(len(row["body"]))

    def _wrote(self, text_bytes: int, rows: int = 1) -> None:
        """After a SQLite commit of ``rows`` rows holding ``text_bytes`` of text:
        count what it added to the WAL toward the next checkpoint."""
        if self._checkpointer is not None:
            self._checkpointer.wrote(wal_bytes(text_bytes, rows))

    async def get_session(self, session_id: str) -> Session:
        """The session, or ``session_not_found``."""
        body = await self._run(lambda e: self._body(e, "asm_sessions", session_id), f"reading session {session_id}")
        if body is None:
            raise _not_found("session", session_id)
        return decode_session(session_id, body)

    def _body(self, engine: Engine, table: str, ident: str) -> str | None:
        mark = self._mark
        with engine.connect() as conn:
            row = conn.exec_driver_sql(f"SELECT body FROM {table} WHERE id = {mark}", (ident,)).first()
        return None if row is None else cast(str, row[0])

    async def list_sessions(
        self,
        *,
        status: SessionStatus | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Session]:
        """Sessions, newest first, filtered by status and agent."""
        return await self.search_sessions(status=status, agent_id=agent_id, limit=limit, offset=offset)

    async def delete_session(self, session_id: str) -> None:
        """Delete a session with its runs and events (no error if missing)."""
        await self._delete_sessions([session_id])
        self._notify([session_id])

    async def _delete_sessions(self, session_ids: list[str]) -> dict[str, int]:
        def drop(engine: Engine) -> dict[str, int]:
            counts = {"sessions": 0, "runs": 0, "events": 0, "artifact_refs": 0}
            with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
                for start in range(0, len(session_ids), _IN_CHUNK):
                    chunk = session_ids[start : start + _IN_CHUNK]
                    counts["artifact_refs"] += conn.execute(
                        select(func.count())
                        .select_from(_EVENTS)
                        .where(_EVENTS.c.session_id.in_(chunk), _EVENTS.c.type == EventType.ARTIFACT_STORED.value)
                    ).scalar_one()
                    counts["events"] += conn.execute(delete(_EVENTS).where(_EVENTS.c.session_id.in_(chunk))).rowcount
                    conn.execute(delete(_HEADS).where(_HEADS.c.session_id.in_(chunk)))
                    counts["runs"] += conn.execute(delete(_RUNS).where(_RUNS.c.session_id.in_(chunk))).rowcount
                    counts["sessions"] += conn.execute(delete(_SESSIONS).where(_SESSIONS.c.id.in_(chunk))).rowcount
            deleted = counts["sessions"] + counts["runs"] + counts["events"]
            self._wrote(_DELETED_ROW_BYTES * deleted, deleted)
            return counts

        return await self._run(drop, "deleting sessions")

    async def save_run(self, run: Run) -> None:
        """Insert or replace ``run`` (a running run is recorded as owned by this process)."""
        row = run_row(run, host=self._host, pid=self._pid)
        await self._run(lambda e: self._upsert(e, _RUNS, row), f"saving run {run.id}")

    async def fork_session(self, session_id: str, *, at_seq: int) -> Session:
        """A new session holding copies of ``session_id``'s first ``at_seq`` events
        (read and appended a page at a time: one group commit per 1,000)."""
        return await fork_by_copy(self, session_id, at_seq=at_seq)

    async def compact_events(self, session_id: str, *, older_than: datetime | None = None) -> Compaction:
        """Replace the redundant deltas of ``session_id`` by ``events_compacted`` markers
        (:func:`asm.stores.plan_compaction`): one read of the log's seqs, types, runs
        and times (no bodies), then a transaction per batch of ranges, each range a
        DELETE of its deltas but the last and an UPDATE of that one into the marker.
        Both only touch rows that are still deltas, so a compaction racing another
        does each range once; appends and reads go on meanwhile (a reader's query
        sees a batch wholly or not at all)."""
        await self.get_session(session_id)
        cutoff = None if older_than is None else naive_utc(older_than)
        rows = await self._run(lambda e: self._log_rows(e, session_id), f"reading the log of session {session_id}")
        ranges = plan_compaction(rows, older_than=cutoff)
        deltas = markers = 0
        runs: set[str] = set()
        for batch in compaction_batches(ranges):
            apply = functools.partial(self._compact_sync, session_id=session_id, batch=batch)
            with trio.CancelScope(shield=True):  # a batch started is finished and counted
                done = await self._run(apply, f"compacting session {session_id}")
            deltas, markers = deltas + sum(r.count for r in done), markers + len(done)
            runs.update(r.run_id for r in done)
        return Compaction(session_id, deltas, markers, len(runs))

    async def count_events(self, session_id: str) -> int:
        """How many events the session's log holds (a compacted range counts once)."""

        def get(engine: Engine) -> int:
            with engine.connect() as conn:
                query = select(func.count()).select_from(_EVENTS).where(_EVENTS.c.session_id == session_id)
                return int(conn.execute(query).scalar_one())

        return await self._run(get, f"counting the events of session {session_id}")

    async def sessions_to_compact(self, *, older_than: datetime | None = None) -> list[str]:
        """The sessions holding ``message_streamed`` deltas (streamed before ``older_than``):
        those ``compact_events`` may find work in (an index walk over the deltas' type and time)."""
        query = select(_EVENTS.c.session_id).where(_EVENTS.c.type == EventType.MESSAGE_STREAMED.value).distinct()
        if older_than is not None:
            query = query.where(_EVENTS.c.at < naive_utc(older_than))

        def get(engine: Engine) -> list[str]:
            with engine.connect() as conn:
                return sorted(conn.execute(query).scalars())

        return await self._run(get, "finding sessions with streamed deltas")

    async def sessions_over(self, events: int) -> list[tuple[str, int]]:
        """The sessions holding at least ``events`` events, with their counts, largest first."""
        count = func.count().label("events")
        query = (
            select(_EVENTS.c.session_id, count).group_by(_EVENTS.c.session_id).having(func.count() >= events)
        ).order_by(count.desc(), _EVENTS.c.session_id)

        def get(engine: Engine) -> list[tuple[str, int]]:
            with engine.connect() as conn:
                return [(row[0], int(row[1])) for row in conn.execute(query).all()]

        return await self._run(get, "counting events per session")

    def _log_rows(self, engine: Engine, session_id: str) -> list[LogRow]:
        mark = self._mark
        sql = f"SELECT seq, type, run_id, at, provider FROM asm_events WHERE session_id = {mark} ORDER BY seq"
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(sql, (session_id,)).all()
        if self.dialect == "sqlite":  # the raw column is naive UTC text
            return [(seq, kind, run, datetime.fromisoformat(at), provider) for seq, kind, run, at, provider in rows]
        return [tuple(row) for row in rows]

    def _compact_sync(self, engine: Engine, session_id: str, batch: list[CompactRange]) -> list[CompactRange]:
        """Apply ``batch`` in one transaction; the ranges this call compacted."""
        mark, delta = self._mark, EventType.MESSAGE_STREAMED.value
        remove = (
            f"DELETE FROM asm_events WHERE session_id = {mark} AND seq >= {mark} AND seq < {mark} AND type = {mark}"
        )
        # The marker takes the last delta's row whole: its columns are the marker's envelope.
        replace = (
            f"UPDATE asm_events SET id = {mark}, type = {mark}, run_id = {mark}, at = {mark}, provider = {mark}, "
            f"schema_version = {mark}, body = {mark} WHERE session_id = {mark} AND seq = {mark} AND type = {mark}"
        )
        done: list[CompactRange] = []
        text_bytes = 0
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            for item in batch:
                marker = item.marker(session_id, item.at.replace(tzinfo=UTC))
                iso = marker.at.isoformat()
                body = encode_event_body(marker, iso) if self._lean else encode_event_json(marker, iso)
                at = _column_at(marker.at)
                values = (marker.id, marker.type.value, marker.run_id, at, marker.provider, marker.schema_version)
                replaced = conn.exec_driver_sql(replace, (*values, body, session_id, item.last_seq, delta)).rowcount
                if not replaced:  # another compaction got here first
                    continue
                conn.exec_driver_sql(remove, (session_id, item.first_seq, item.last_seq, delta))
                done.append(item)
                text_bytes += len(body)
        rows = sum(item.count for item in done)
        self._wrote(text_bytes + _DELETED_ROW_BYTES * rows, rows)
        return done

    async def claim_run(self, run: Run) -> None:
        """Save ``run`` (now ``running``) if the stored copy is still ``pending``: one
        conditional UPDATE, so of several processes claiming a run one wins; the
        others get ``invalid_operation`` naming the owner."""
        claim = functools.partial(self._claim, run=run, status=RunStatus.PENDING)
        if not await self._run(claim, f"claiming run {run.id}"):
            raise claim_refused(await self.get_run(run.id))

    async def get_run(self, run_id: str) -> Run:
        """The run, or ``run_not_found``."""
        body = await self._run(lambda e: self._body(e, "asm_runs", run_id), f"reading run {run_id}")
        if body is None:
            raise _not_found("run", run_id)
        return decode_run(run_id, body)

    async def list_runs(self, session_id: str, *, status: RunStatus | None = None) -> list[Run]:
        """A session's runs, oldest first."""

        def get(engine: Engine) -> list[Any]:
            query = select(_RUNS.c.id, _RUNS.c.body).where(_RUNS.c.session_id == session_id)
            if status is not None:
                query = query.where(_RUNS.c.status == RunStatus(status).value)
            with engine.connect() as conn:
                return list(conn.execute(query.order_by(_RUNS.c.created_at, _RUNS.c.id)).all())

        rows = await self._run(get, f"listing runs of session {session_id}")
        return [decode_run(ident, body) for ident, body in rows]

    # -- appending: group commit ---------------------------------------------

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Store events in order, each at its session's next seq, and return
        them as stored. An id already stored comes back as first stored.

        The events of every ``append_events`` call waiting when a commit
        starts go into that one transaction (group commit); each call returns
        only after the transaction holding its events has committed.
        """
        return await self._append(events, owned=False)

    async def append_owned_events(
        self, events: Sequence[Event], on_taken: Callable[[], object] | None = None
    ) -> list[Event]:
        """``append_events`` of events the caller gives up (:class:`asm.ports.OwnedAppend`,
        a run's write queue): each is sequenced in place (``asm.events.sequence_in_place``)
        once committed, instead of copied; ``on_taken`` is called once their rows are
        built, while the database writes them."""
        return await self._append(events, owned=True, on_taken=on_taken)

    async def _append(
        self, events: Sequence[Event], *, owned: bool, on_taken: Callable[[], object] | None = None
    ) -> list[Event]:
        if not events:
            return []
        await self._ready()
        request = _Append(list(events), owned, on_taken)
        self._pending.append(request)
        try:
            # Not ``async with``: when the lock is free, acquiring it yields to the other tasks,
            # and a run's provider, woken by the flush that called here, would then fill
            # the run's queue before this commit even starts (see PromptLimiter).
            if not self._commit_lock.locked():
                self._commit_lock.acquire_nowait()
            else:
                await self._commit_lock.acquire()
            try:
                if not request.taken:
                    await self._lead()
            finally:
                self._commit_lock.release()
        except BaseException:
            if not request.taken:
                self._pending.remove(request)
                raise
            if not request.done.is_set():
                # Cancelled while another task commits our events: wait for the outcome.
                with trio.CancelScope(shield=True):
                    await request.done.wait()
            raise
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    async def _lead(self) -> None:
        if self.batch_delay > 0 and sum(len(p.events) for p in self._pending) < self.batch_max_events:
            await trio.sleep(self.batch_delay)
        batch: list[_Append] = []
        size = 0
        while self._pending and (not batch or size + len(self._pending[0].events) <= self.batch_max_events):
            request = self._pending.pop(0)
            request.taken = True
            batch.append(request)
            size += len(request.events)
        events = [event for request in batch for event in request.events]
        signals = [request.on_taken for request in batch if request.on_taken is not None]
        token = trio.lowlevel.current_trio_token()

        def taken() -> None:  # in the writer thread
            for signal in signals:
                token.run_sync_soon(signal)

        try:
            with trio.CancelScope(shield=True):
                owned = all(request.owned for request in batch)
                stored = await self._run(
                    lambda e: self._append_sync(e, events, owned, taken if signals else None), "appending events"
                )
        except BaseException as exc:
            for request in batch:
                request.error = exc
                request.done.set()
            raise
        position = 0
        for request in batch:
            request.result = stored[position : position + len(request.events)]
            position += len(request.events)
            request.done.set()
        self._commits += 1
        self._appends += len(batch)
        self._events += len(events)
        self._largest = max(self._largest, len(events))
        self._notify({event.session_id for event in stored})

    def _notify(self, session_ids: Iterable[str]) -> None:
        for session_id in session_ids:
            changed = self._changed.pop(session_id, None)
            if changed is not None:
                changed.set()

    def _append_sync(
        self, engine: Engine, events: list[Event], owned: bool = False, taken: Callable[[], None] | None = None
    ) -> list[Event]:
        # Event ids are fresh almost always, so the first attempt just inserts and lets the
        # unique index object; only then are the ids looked up, and the ones already
        # stored (an append retried, or the same event sent twice) come back as stored.
        # (PostgreSQL appends go through psycopg's own cursor: its IntegrityError is not SQLAlchemy's.)
        duplicate = (IntegrityError, engine.dialect.loaded_dbapi.IntegrityError)
        for attempt in range(3):
            try:
                # (``taken`` once: a retry's rows are built again, while the caller already runs.)
                return self._append_once(engine, events, look_up=attempt > 0, owned=owned, taken=taken)
            except duplicate:
                if attempt == 2:
                    raise
                taken = None
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _writing(self, engine: Engine) -> Iterator[Any]:
        """An append's transaction, as the DBAPI connection it runs on (committed when the
        block ends, rolled back if it raises). On SQLite that is one pooled connection the
        store keeps for its appends until :meth:`aclose` (they are one at a time), with the
        transaction begun and ended in SQL: SQLAlchemy's checkout, begin and commit around
        it cost about as much as a streamed run's 1,000-event INSERT takes to bind."""
        if self.dialect != "sqlite":
            with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
                yield _driver(conn)
            return
        writer = self._writer
        if writer is None:
            writer = self._writer = engine.raw_connection()
        driver = cast(sqlite3.Connection, writer.driver_connection)
        driver.execute("BEGIN IMMEDIATE")
        try:
            yield driver
            driver.execute("COMMIT")
        except BaseException:
            try:
                driver.execute("ROLLBACK")
            except sqlite3.Error:
                if driver.in_transaction:  # neither committed nor rolled back: start afresh
                    self._writer = None
                    writer.invalidate()
                    writer.close()
            raise

    def _append_once(
        self,
        engine: Engine,
        events: list[Event],
        *,
        look_up: bool,
        owned: bool = False,
        taken: Callable[[], None] | None = None,
    ) -> list[Event]:
        text_bytes = 0
        with self._writing(engine) as conn:
            known: dict[str, Event] = {}
            if look_up:
                for row in self._stored_rows(conn, list(dict.fromkeys(e.id for e in events))):
                    known[row[2]] = decode_stored(row)
            fresh: list[Event] = []
            counts: dict[str, int] = {}
            # Owned events are the caller's no more: each is sequenced in place, saving the one copy
            # per event, but only once its transaction has committed (an attempt that fails leaves
            # them as they were). The lean body does not hold the seq; the whole one does.
            in_place = owned and self._lean
            # The first attempt takes every id as new (the unique index objects otherwise): with no
            # id twice in the batch (owned ones never are, asm.ports.OwnedAppend), every event is
            # fresh and what comes back is each stored in order, so no lookup table is needed.
            copies: list[Event] | None = None
            if not look_up and (in_place or len({event.id for event in events}) == len(events)):
                fresh = events
                copies = None if in_place else []
                for event in events:
                    counts[event.session_id] = counts.get(event.session_id, 0) + 1
            else:
                for event in events:
                    if event.id not in known:
                        known[event.id] = event  # placeholder: a second copy in this batch is not fresh
                        fresh.append(event)
                        counts[event.session_id] = counts.get(event.session_id, 0) + 1
            next_seq = self._reserve(conn, counts)
            sqlite = self.dialect == "sqlite"
            #: SQLite: per event its id, type, at and body, one after the other (the rest of its row
            #: is its envelope and seq; a flat list, as a tuple per row would cost a garbage collection
            #: per batch). PostgreSQL's COPY takes whole rows (``rows``).
            cells: list[str] = []
            rows: list[tuple[Any, ...]] = []
            type_names = _TYPE_NAMES
            lean = self._lean
            seqs: list[int] = []
            last_at: datetime | None = None
            iso = at = ""
            in_column = False
            first = fresh[0] if fresh else events[0]
            # SQLite: one session's, run's and provider's events (nearly every batch), one envelope.
            shared = sqlite
            with gc_paused():  # the batch's bodies and copies all outlive the loop, in no cycle
                session: str | None = None
                seq = 0
                for event in fresh:
                    session_id = event.session_id
                    if session_id is not session:  # a batch is nearly always one session's
                        if session is not None:
                            next_seq[session] = seq
                            shared = False
                        session = session_id
                        seq = next_seq[session_id]
                    if shared and (
                        event.run_id != first.run_id
                        or event.provider != first.provider
                        or event.schema_version != first.schema_version
                    ):
                        shared = False
                    seqs.append(seq)
                    if in_place:
                        stored = event
                    elif copies is not None:
                        stored = event.with_seq(seq)
                        copies.append(stored)
                    else:
                        stored = known[event.id] = event.with_seq(seq)
                    if event.at is not last_at:  # asm's events of one millisecond share their time
                        last_at = event.at
                        iso = last_at.isoformat()
                        in_column = at_in_column(iso)
                        # Naive UTC text for the ``at`` column, cut from the isoformat the JSON needs anyway;
                        # PostgreSQL casts it (a datetime per event would cost more than the text).
                        at = (
                            f"{iso[:10]} {iso[11:26]}"
                            if len(iso) == 32 and iso[26:] == "+00:00"
                            else _column_at(last_at)
                        )
                    body = encode_event_body(stored, iso, in_column) if lean else encode_event_json(stored, iso)
                    if sqlite:
                        cells += (event.id, type_names[event.data.type], at, body)
                    else:
                        rows.append(
                            (
                                session_id,
                                seq,
                                event.id,
                                event.run_id,
                                type_names[event.data.type],
                                at,
                                event.provider,
                                event.schema_version,
                                body,
                            )
                        )
                    seq += 1
            # ``taken`` once what is left is the database's work, which lets go of the interpreter.
            if cells:
                text_bytes = sum(map(len, cells[3::4]))
                statements = (
                    _sqlite_one_run(first, seqs[0], cells) if shared else _sqlite_rows(_full_rows(fresh, seqs, cells))
                )
                if taken is not None:
                    taken()
                for sql, params in statements:
                    conn.execute(sql, params)
            elif rows:
                if taken is not None:
                    taken()
                with conn.cursor() as cursor, cursor.copy(_COPY_PG) as copy:
                    for row in rows:
                        copy.write_row(row)
        self._wrote(text_bytes, len(fresh))
        if in_place:
            collections.deque(map(sequence_in_place, fresh, seqs), maxlen=0)
            if fresh is events:
                return list(events)
        if copies is not None:
            return copies
        return [known[event.id] for event in events]

    def _stored_rows(self, conn: Any, ids: list[str]) -> list[Any]:
        """The rows (``ROW_COLUMNS``) of the events among ``ids`` that are already stored."""
        if self.dialect == "postgresql":
            with conn.cursor() as cursor:
                cursor.execute(_STORED_PG, (ids,), binary=True)
                return list(cursor.fetchall())
        rows: list[Any] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            sql = f"SELECT {ROW_COLUMNS} FROM asm_events WHERE id IN ({', '.join(['?'] * len(chunk))})"
            rows += conn.execute(sql, tuple(chunk)).fetchall()
        return rows

    def _reserve(self, conn: Any, counts: dict[str, int]) -> dict[str, int]:
        """Advance each session's head by its count (locking the head row until
        commit); return the first seq to use per session."""
        first: dict[str, int] = {}
        if self.dialect == "postgresql":
            ids = sorted(counts)
            with conn.cursor() as cursor:
                cursor.execute(_RESERVE_PG, (ids, [counts[i] for i in ids]))
                return {session_id: last - counts[session_id] + 1 for session_id, last, _ in cursor.fetchall()}
        # Plain SQL: building the same upsert with SQLAlchemy Core cost more than the rest
        # of a one-event append.
        sql = _RESERVE_SQL[self._mark]
        for session_id in sorted(counts):  # one lock order for every writer: no deadlocks
            count = counts[session_id]
            (last,) = conn.execute(sql, (session_id, count)).fetchone()
            first[session_id] = last - count + 1
        return first

    # -- reading -------------------------------------------------------------

    async def read_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        types: Iterable[EventType | str] | None = None,
        run_id: str | None = None,
    ) -> Page:
        """A page of events with ``after < seq < before``, oldest first, at most
        ``limit``; see :class:`asm.Page` for ``cursor`` and ``has_more``.
        A row whose JSON is corrupt raises ``storage_read_failed`` naming its
        event id; pages around it stay readable."""
        validate_page_args(after, before, limit)
        wanted = parse_event_types(types)
        if wanted is not None and not wanted:
            return Page((), after, has_more=False)

        mark = self._mark
        # The columns hold each event's envelope, the body the rest (or, written before
        # revision 0004, the whole event).
        columns = PAGE_COLUMNS if self.dialect == "sqlite" else PAGE_COLUMNS_PG
        sql = f"SELECT {columns} FROM asm_events WHERE session_id = {mark} AND seq > {mark}"
        params: list[Any] = [session_id, after]
        if before is not None:
            sql += f" AND seq < {mark}"
            params.append(before)
        if wanted is not None:
            sql += f" AND type IN ({', '.join([mark] * len(wanted))})"
            params += sorted(t.value for t in wanted)
        if run_id is not None:
            sql += f" AND run_id = {mark}"
            params.append(run_id)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {mark}"
            params.append(limit + 1)

        def read(engine: Engine) -> tuple[tuple[Event, ...], bool]:
            # The driver's own cursor: pages are long, and its plain tuples cost half of
            # what SQLAlchemy's rows do per event. Decoding happens here too, off the
            # event loop's thread.
            with engine.connect() as conn, gc_paused():
                driver = _driver(conn)
                if self.dialect == "sqlite":
                    rows = cast(sqlite3.Connection, driver).execute(sql, params).fetchall()
                else:
                    with driver.cursor() as cursor:
                        # A session's log is read in seq order, a walk of the primary key. Before
                        # autovacuum first analyzes a freshly written table, the planner guesses
                        # a few rows and picks a bitmap scan and an on-disk sort (4x slower).
                        cursor.execute("SET LOCAL enable_bitmapscan = off")
                        cursor.execute("SET LOCAL TimeZone = 'UTC'")  # see PAGE_COLUMNS_PG
                        cursor.execute(sql, params)
                        rows = cursor.fetchall()
                more = limit is not None and len(rows) > limit
                events = decode_log(session_id, rows[:limit] if more else rows)
                # The rows go before the collector comes back: else its first collection,
                # due at once, walks each of them as well as each event.
                del rows
                if len(events) >= KEPT_PAGE:
                    keep_built()
                return events, more

        events, more = await self._run(read, f"reading events of session {session_id}")
        # The cursor never passes an event this read did not see: a second query for the
        # session's latest seq could count an event appended after the rows were read, and a
        # filtered follower would then skip it for good.
        last = events[-1].seq if events else None
        return Page(events, after if last is None else last, has_more=more)

    async def wait_for_events(
        self,
        session_id: str,
        *,
        after: int,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> Page:
        """Long-poll: the events after ``after`` as soon as there are any, or an
        empty page (cursor ``after``) when ``timeout`` seconds pass first.

        Appends made through this store object wake the waiter at once;
        appends made by other processes wake it through PostgreSQL
        LISTEN/NOTIFY, or on SQLite within ``poll_interval`` seconds.
        """
        validate_page_args(after, None, limit)
        page = await self.read_events(session_id, after=after, limit=limit)
        if page.events or timeout == 0:
            return page
        await self._ready()
        waker = self._waker
        assert waker is not None
        # The waker's own connections (LISTEN, PRAGMA data_version) fail as drivers do: as AsmErrors too.
        with (
            database_errors(self.url, f"waiting for events of session {session_id}"),
            trio.move_on_after(float("inf") if timeout is None else timeout),
        ):
            async with waker.watch(session_id) as changed_elsewhere:
                while True:
                    changed = self._changed.setdefault(session_id, trio.Event())
                    page = await self.read_events(session_id, after=after, limit=limit)
                    if page.events:
                        return page
                    async with trio.open_nursery() as nursery:

                        async def other_process(scope: trio.CancelScope = nursery.cancel_scope) -> None:
                            await changed_elsewhere()
                            scope.cancel()

                        nursery.start_soon(other_process)
                        await changed.wait()
                        nursery.cancel_scope.cancel()
        return Page((), after, has_more=False)

    async def latest_seq(self, session_id: str) -> int:
        """The highest seq stored for the session (0 if none)."""

        def get(engine: Engine) -> int:
            with engine.connect() as conn:
                value = conn.execute(select(func.max(_EVENTS.c.seq)).where(_EVENTS.c.session_id == session_id)).scalar()
            return int(value or 0)

        return await self._run(get, f"reading the latest seq of session {session_id}")

    # -- QueryAPI ------------------------------------------------------------

    async def search_sessions(self, **filters: Any) -> list[Session]:
        """Sessions newest first, filtered by ``agent_id``, ``status``,
        ``provider`` and a ``since``/``until`` window on ``created_at``
        (datetimes); ``limit`` and ``offset`` page. An unknown filter is a
        ``validation_error``."""
        _check_filters(filters, _SEARCH_SESSION_FILTERS, "search_sessions")
        query = select(_SESSIONS.c.id, _SESSIONS.c.body)
        if filters.get("agent_id") is not None:
            query = query.where(_SESSIONS.c.agent_id == filters["agent_id"])
        if filters.get("status") is not None:
            query = query.where(_SESSIONS.c.status == _status(filters["status"]))
        if filters.get("provider") is not None:
            query = query.where(_SESSIONS.c.provider == filters["provider"])
        if filters.get("since") is not None:
            query = query.where(_SESSIONS.c.created_at >= _when(filters["since"], "since"))
        if filters.get("until") is not None:
            query = query.where(_SESSIONS.c.created_at < _when(filters["until"], "until"))
        limit, offset = filters.get("limit"), filters.get("offset", 0) or 0
        if limit is not None and not _count(limit, 0):
            raise AsmError("validation_error", f"limit={limit!r} must be an integer from 0 to 2**63-1, or None")
        if not _count(offset, 0):
            raise AsmError("validation_error", f"offset={offset!r} must be an integer from 0 to 2**63-1")
        query = query.order_by(_SESSIONS.c.created_at.desc(), _SESSIONS.c.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)

        def get(engine: Engine) -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(query).all())

        rows = await self._run(get, "searching sessions")
        return [decode_session(ident, body) for ident, body in rows]

    async def usage_summary(self, **filters: Any) -> dict[str, Any]:
        """Token and cost totals of runs, grouped by ``group_by`` (``"session"``,
        ``"agent"``, ``"provider"`` or ``"model"``; default ``"agent"``) and
        filtered by ``agent_id``, ``provider``, ``model``, ``session_id`` and
        a ``since``/``until`` window on the run's creation.

        Returns ``{"group_by": ..., "groups": [{"key", "runs", "input_tokens",
        "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "total_tokens", "cost_usd"}, ...], "total": {...}}``, groups sorted by
        key; ``cost_usd`` sums the runs that reported a cost.
        """
        _check_filters(filters, _USAGE_FILTERS, "usage_summary")
        group_by = filters.get("group_by", "agent")
        if group_by not in _GROUPS:
            raise AsmError("validation_error", f"group_by={group_by!r} is not one of {', '.join(sorted(_GROUPS))}")
        key = _SESSIONS.c.agent_id if group_by == "agent" else _RUNS.c[_GROUPS[group_by]]
        sums = [func.coalesce(func.sum(_RUNS.c[name]), 0) for name in _TOKEN_COLUMNS]
        query = (
            select(key, func.count(_RUNS.c.id), *sums, func.sum(_RUNS.c.cost_usd))
            .select_from(_RUNS.join(_SESSIONS, _SESSIONS.c.id == _RUNS.c.session_id, isouter=True))
            .group_by(key)
        )
        for name, column in (
            ("agent_id", _SESSIONS.c.agent_id),
            ("provider", _RUNS.c.provider),
            ("model", _RUNS.c.model),
            ("session_id", _RUNS.c.session_id),
        ):
            if filters.get(name) is not None:
                query = query.where(column == filters[name])
        if filters.get("since") is not None:
            query = query.where(_RUNS.c.created_at >= _when(filters["since"], "since"))
        if filters.get("until") is not None:
            query = query.where(_RUNS.c.created_at < _when(filters["until"], "until"))

        def get(engine: Engine) -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(query).all())

        rows = await self._run(get, "summing usage")
        groups = [_usage_entry(row[0], row[1], row[2:6], row[6]) for row in rows]
        groups.sort(key=lambda g: (g["key"] is None, str(g["key"])))
        total = _usage_entry(
            None,
            sum(g["runs"] for g in groups),
            [sum(g[name] for g in groups) for name in _TOKEN_COLUMNS],
            sum(g["cost_usd"] for g in groups if g["cost_usd"] is not None)
            if any(g["cost_usd"] is not None for g in groups)
            else None,
        )
        del total["key"]
        return {"group_by": group_by, "groups": groups, "total": total}

    async def search_events(self, **filters: Any) -> list[Event]:
        """Events across sessions, oldest first: ``types`` (event type names,
        unknown ones are a ``validation_error``), ``text`` (case-insensitive
        substring of the event's JSON, e.g. a word of a message), optionally
        within ``session_id`` / ``run_id`` and a ``since``/``until`` window on
        the event time; at most ``limit`` (default 100)."""
        _check_filters(filters, _SEARCH_EVENT_FILTERS, "search_events")
        wanted = parse_event_types(filters.get("types"))
        limit = filters.get("limit", 100)
        if limit is not None and not _count(limit, 1):
            raise AsmError("validation_error", f"limit={limit!r} must be an integer from 1 to 2**63-1, or None")
        query = select(*(_EVENTS.c[name] for name in ROW_COLUMNS.split(", ")))
        if wanted is not None:
            query = query.where(_EVENTS.c.type.in_(sorted(t.value for t in wanted)))
        search = filters.get("text")
        if search is not None:
            if not isinstance(search, str) or not search:
                raise AsmError("validation_error", f"text={search!r} must be a non-empty string")
            encoded = json.dumps(search, ensure_ascii=False)[1:-1]  # as it appears inside the JSON
            query = query.where(_EVENTS.c.body.icontains(encoded, autoescape=True))
        for name in ("session_id", "run_id"):
            if filters.get(name) is not None:
                query = query.where(_EVENTS.c[name] == filters[name])
        if filters.get("since") is not None:
            query = query.where(_EVENTS.c.at >= _when(filters["since"], "since"))
        if filters.get("until") is not None:
            query = query.where(_EVENTS.c.at < _when(filters["until"], "until"))
        query = query.order_by(_EVENTS.c.at, _EVENTS.c.session_id, _EVENTS.c.seq)
        if limit is not None:
            query = query.limit(limit)

        def get(engine: Engine) -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(query).all())

        rows = await self._run(get, "searching events")
        return list(decode_events(rows))

    # -- Maintenance ---------------------------------------------------------

    async def apply_retention(self, *, max_age_days: float) -> dict[str, int]:
        """Delete sessions not updated for ``max_age_days`` days, with their
        runs and events; counts of what went (``artifact_refs`` counts the
        ``artifact_stored`` events among them: delete those blobs from the
        artifact store yourself, see :meth:`artifact_keys`)."""
        if isinstance(max_age_days, bool) or not isinstance(max_age_days, int | float) or not max_age_days >= 0:
            raise AsmError("validation_error", f"max_age_days={max_age_days!r} must be a number >= 0")
        cutoff = naive_utc(utcnow() - timedelta(days=max_age_days))

        def old(engine: Engine) -> list[str]:
            with engine.connect() as conn:
                return list(conn.execute(select(_SESSIONS.c.id).where(_SESSIONS.c.updated_at < cutoff)).scalars())

        session_ids = await self._run(old, "finding old sessions")
        if not session_ids:
            return {"sessions": 0, "runs": 0, "events": 0, "artifact_refs": 0}
        counts = await self._delete_sessions(session_ids)
        self._notify(session_ids)
        return counts

    async def artifact_keys(self, session_id: str) -> list[str]:
        """The artifact keys a session's ``artifact_stored`` events refer to."""
        page = await self.read_events(session_id, types=[EventType.ARTIFACT_STORED])
        return [event.data.key for event in page.events]  # type: ignore[attr-defined]

    async def vacuum(self) -> None:
        """Reclaim space and refresh the planner's statistics
        (``VACUUM`` + ``ANALYZE`` on SQLite, ``VACUUM ANALYZE`` on PostgreSQL)."""

        def run(engine: Engine) -> None:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in (_SESSIONS, _RUNS, _EVENTS, _HEADS):
                    conn.exec_driver_sql(f"VACUUM ANALYZE {table.name}")

        if self.dialect == "sqlite":
            await self._run(lambda engine: self._sqlite_raw(engine, ["VACUUM", "ANALYZE"]), "vacuuming")
        else:
            await self._run(run, "vacuuming")

    def _sqlite_raw(self, engine: Engine, statements: list[str]) -> list[Any]:
        raw = engine.raw_connection()
        try:
            dbapi = raw.driver_connection
            assert isinstance(dbapi, sqlite3.Connection)
            return [dbapi.execute(statement).fetchall() for statement in statements]
        finally:
            raw.close()

    async def health_check(self) -> list[str]:
        """Problems found (empty when healthy): an unreachable database, a
        schema that is not at the head revision, a failed SQLite integrity
        check or a journal mode other than WAL, and sequence heads behind
        their logs."""
        problems: list[str] = []
        try:
            engine = await self._ready()
        except AsmError as exc:
            return [f"{exc.code}: {exc.message}"]

        def check(engine: Engine) -> list[str]:
            found: list[str] = []
            from asm_sqlalchemy._migrations import current_revision

            with engine.connect() as conn:
                revision = current_revision(conn)
                if revision != head_revision():
                    found.append(f"schema revision is {revision}, expected {head_revision()}; run `asm db upgrade`")
                behind = conn.execute(
                    select(func.count())
                    .select_from(_HEADS)
                    .where(
                        _HEADS.c.last_seq
                        < select(func.max(_EVENTS.c.seq))
                        .where(_EVENTS.c.session_id == _HEADS.c.session_id)
                        .scalar_subquery()
                    )
                ).scalar_one()
                if behind:
                    found.append(f"{behind} session seq heads are behind their event logs")
            if self.dialect == "sqlite":
                integrity, mode = self._sqlite_raw(engine, ["PRAGMA quick_check", "PRAGMA journal_mode"])
                if [row[0] for row in integrity] != ["ok"]:
                    found.append("integrity check failed: " + "; ".join(str(row[0]) for row in integrity[:5]))
                if mode[0][0].lower() != "wal":
                    found.append(f"journal mode is {mode[0][0]}, expected wal")
            return found

        problems += await self._thread(lambda: check(engine), "checking health")
        return problems

    async def recover_interrupted_runs(self, *, all_hosts: bool = False) -> list[str]:
        """Mark runs left ``running`` by a process that died as ``failed``
        (error ``provider_error`` with ``provider_error.kind == "interrupted"``),
        append a ``run_failed`` event to each one's session, and end the one-shot
        session (``run_once``'s) it belonged to; return their ids.

        A run is interrupted when its owner (:class:`asm.model.RunOwner`) is dead:
        it ran on this host, and since then the host rebooted, or no process has
        the owner's PID, or the process with that PID started at another time (a
        reused PID; see :mod:`asm.owners` for what each platform can tell). The
        agent processes its provider started that still run are stopped first.
        Runs owned by other hosts are left alone unless ``all_hosts`` (use it only
        when no other machine is running asm on this database).
        """

        def find(engine: Engine) -> list[Any]:
            query = select(_RUNS.c.id, _RUNS.c.body, _RUNS.c.owner_host, _RUNS.c.owner_pid).where(
                _RUNS.c.status == RunStatus.RUNNING.value
            )
            with engine.connect() as conn:
                return list(conn.execute(query).all())

        recovered: list[str] = []
        for ident, body, host, pid in await self._run(find, "finding running runs"):
            run = decode_run(ident, body)
            owner = run.owner
            if owner is None:  # claimed by an older asm: a host and a PID are all there is
                owner = RunOwner(host or "?", ProcessIdentity(pid or 0))
            state = owner_state(owner)
            if state == "alive" or (state == "unknown" and not all_hosts):
                continue
            if state == "dead":
                await stop_orphans(owner)
            provider = run.provider or "unknown"
            message = f"run was interrupted: the process executing it ({owner.describe()}) stopped; run it again"
            error = ProviderError(provider, "interrupted", message)
            info = ErrorInfo("provider_error", message, retryable=True, provider_error=error)
            failed = attrs.evolve(run, status=RunStatus.FAILED, ended_at=utcnow(), error=info)
            claim = functools.partial(self._claim, run=failed, status=RunStatus.RUNNING)
            if not await self._run(claim, f"recovering run {ident}"):
                continue
            data = RunFailed(info.code, info.message, True, error)
            await self.append_events([Event.new(data, session_id=run.session_id, run_id=run.id, provider=provider)])
            await self._end_one_shot_session(run.session_id, info)
            recovered.append(ident)
        return recovered

    async def _end_one_shot_session(self, session_id: str, info: ErrorInfo) -> None:
        session = await self.get_session(session_id)
        if not session.one_shot or session.status.is_terminal:
            return
        ended = attrs.evolve(session, status=SessionStatus.FAILED, updated_at=utcnow(), error=info)
        await self.save_session(ended)
        data = SessionFailed(info.code, info.message, info.provider_error)
        await self.append_events([Event.new(data, session_id=session_id, provider=session.provider)])

    def _claim(self, engine: Engine, run: Run, status: RunStatus) -> bool:
        """Save ``run`` if its stored status is ``status``; whether it was."""
        row = run_row(run, host=self._host, pid=self._pid)
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            result = conn.execute(
                update(_RUNS)
                .where(_RUNS.c.id == run.id, _RUNS.c.status == status.value)
                .values(**{k: v for k, v in row.items() if k != "id"})
            )
        self._wrote(len(row["body"]))
        return bool(result.rowcount)


_TOKEN_COLUMNS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _usage_entry(key: Any, runs: int, tokens: Sequence[Any], cost: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "runs": int(runs)}
    for name, value in zip(_TOKEN_COLUMNS, tokens, strict=True):
        entry[name] = int(value or 0)
    entry["total_tokens"] = entry["input_tokens"] + entry["output_tokens"]
    entry["cost_usd"] = float(cost) if cost is not None else None
    return entry


def _count(value: object, low: int) -> bool:
    """An integer from ``low`` to the largest the databases hold."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_SEQ


def _check_filters(filters: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise AsmError(
            "validation_error",
            f"{what}: unknown filter {', '.join(map(repr, unknown))}; valid filters: {', '.join(sorted(allowed))}",
            details={"unknown": unknown},
        )


def _status(value: Any) -> str:
    try:
        return SessionStatus(value).value
    except ValueError:
        raise AsmError(
            "validation_error",
            f"status={value!r} is not a session status; use one of {', '.join(s.value for s in SessionStatus)}",
        ) from None


def _when(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise AsmError("validation_error", f"{name}={value!r} must be a datetime")
    return naive_utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


@functools.cache
def _upsert_sql(table: str, names: tuple[str, ...], mark: str) -> str:
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != "id")
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}"
    )


def _sqlite_value(value: Any) -> Any:
    """A column value as SQLAlchemy's SQLite types store it (datetimes as text)."""
    return _sqlite_text(value) if isinstance(value, datetime) else value


def _sqlite_text(value: datetime) -> str:
    """A naive UTC datetime as SQLAlchemy's SQLite ``DateTime`` stores it."""
    return value.isoformat(sep=" ", timespec="microseconds")


def _full_rows(events: list[Event], seqs: list[int], cells: list[str]) -> list[tuple[Any, ...]]:
    """The events' rows, every column (``_COLUMNS``), from their cells (id, type, at, body each)."""
    return [
        (event.session_id, seq, ident, event.run_id, kind, at, event.provider, event.schema_version, body)
        for event, seq, ident, kind, at, body in zip(
            events, seqs, cells[0::4], cells[1::4], cells[2::4], cells[3::4], strict=True
        )
    ]


def _sqlite_rows(rows: list[tuple[Any, ...]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The INSERT statements, with their parameters, that write ``rows`` (every column)."""
    return [
        (_sqlite_insert(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))
        for chunk in (rows[i : i + _SQLITE_ROWS_PER_INSERT] for i in range(0, len(rows), _SQLITE_ROWS_PER_INSERT))
    ]


def _sqlite_one_run(first: Event, seq: int, cells: list[str]) -> list[tuple[str, tuple[Any, ...]]]:
    """The INSERT statements that write consecutive events of ``first``'s session, run and
    provider from ``seq`` on, given their cells (id, type, at, body each): the envelope is
    bound once per statement and each row's seq computed from the first, so a row binds 4
    parameters instead of 9 (binding holds the GIL)."""
    envelope = (first.session_id, first.run_id, first.provider, first.schema_version)
    per = 4 * _SQLITE_ROWS_PER_INSERT
    statements = []
    for start in range(0, len(cells), per):
        chunk = cells[start : start + per]
        statements.append((_sqlite_insert_one_run(len(chunk) // 4), (*envelope, seq + start // 4, *chunk)))
    return statements


@functools.lru_cache(maxsize=_SQL_CACHED)
def _sqlite_insert(rows: int) -> str:
    return f"INSERT INTO asm_events ({_COLUMNS}) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)


@functools.lru_cache(maxsize=_SQL_CACHED)
def _sqlite_insert_one_run(rows: int) -> str:
    # ?1-?4: the envelope (session, run, provider, schema version); ?5: the first row's seq. A bare
    # ? takes the number after the largest so far (6, 7, 8, 9, then 10...): the row's id, type,
    # at and body. (Numbering each one, ?6 and on, makes SQLite's parser search its list of
    # numbered parameters for each: a 1,000-row statement took 20 ms more to prepare.)
    values = ", ".join([f"(?1, ?5 + {i}, ?, ?2, ?, ?, ?3, ?4, ?)" for i in range(rows)])
    return f"INSERT INTO asm_events ({_COLUMNS}) VALUES {values}"


def _driver(conn: Connection) -> Any:
    """The DBAPI driver's own connection under ``conn`` (psycopg's, for its cursor and COPY)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def _column_at(at: datetime) -> str:
    """``at`` as the ``at`` column keeps it: naive UTC text to the microsecond
    (SQLAlchemy's SQLite ``DateTime`` format; PostgreSQL casts it to ``timestamp``)."""
    return _sqlite_text(naive_utc(at))


def _not_found(kind: str, ident: str) -> AsmError:
    return AsmError(
        f"{kind}_not_found", f"{kind} {ident!r} does not exist; check the id", details={f"{kind}_id": ident}
    )
