"""In-memory session and artifact stores: the full ports, nothing durable.

For tests, examples and short-lived processes. Both are safe to share between
tasks of one trio run (every method finishes its bookkeeping without awaiting
in between, so appends are atomic with respect to other tasks).

>>> store = InMemorySessionStore()
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime

import attrs
import trio

from asm.errors import AsmError
from asm.events import Event, EventType, _set_seq_in_place
from asm.model import Artifact, Page, Run, Session, utcnow
from asm.states import RunStatus, SessionStatus
from asm.stores import (
    Compaction,
    claim_refused,
    fork_by_copy,
    parse_event_types,
    plan_compaction,
    validate_artifact_key,
    validate_page_args,
)

__all__ = ["InMemoryArtifactStore", "InMemorySessionStore"]


@attrs.define
class _Log:
    events: list[Event] = attrs.field(factory=list)
    seqs: list[int] = attrs.field(factory=list)  # events' seqs, for bisect (compaction leaves holes)
    head: int = 0  # the last seq given out
    changed: trio.Event = attrs.field(factory=trio.Event)


class InMemorySessionStore:
    """Sessions, runs and events in dicts; each session's log a list in seq order."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, _Log] = {}
        self._by_id: dict[str, Event] = {}

    async def __aenter__(self) -> InMemorySessionStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to release."""

    # -- sessions and runs ---------------------------------------------------

    async def save_session(self, session: Session) -> None:
        """Insert or replace ``session``."""
        self._sessions[session.id] = session

    async def get_session(self, session_id: str) -> Session:
        """The session, or ``session_not_found``."""
        try:
            return self._sessions[session_id]
        except KeyError:
            raise _not_found("session", session_id) from None

    async def list_sessions(
        self,
        *,
        status: SessionStatus | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Session]:
        """Sessions, newest first."""
        found = [
            s
            for s in self._sessions.values()
            if (status is None or s.status == status) and (agent_id is None or s.agent_id == agent_id)
        ]
        found.sort(key=lambda s: s.created_at, reverse=True)
        return found[offset : None if limit is None else offset + limit]

    async def delete_session(self, session_id: str) -> None:
        """Forget a session, its runs and its events."""
        self._sessions.pop(session_id, None)
        for run_id in [r.id for r in self._runs.values() if r.session_id == session_id]:
            del self._runs[run_id]
        log = self._logs.pop(session_id, None)
        if log is not None:
            for event in log.events:
                self._by_id.pop(event.id, None)
            log.changed.set()

    async def save_run(self, run: Run) -> None:
        """Insert or replace ``run``."""
        self._runs[run.id] = run

    async def fork_session(self, session_id: str, *, at_seq: int) -> Session:
        """A new session holding copies of ``session_id``'s first ``at_seq`` events."""
        return await fork_by_copy(self, session_id, at_seq=at_seq)

    async def claim_run(self, run: Run) -> None:
        """Save ``run`` (now ``running``) if the stored copy is still ``pending``,
        else raise ``invalid_operation`` (:func:`asm.stores.claim_refused`)."""
        stored = await self.get_run(run.id)
        if stored.status is not RunStatus.PENDING:
            raise claim_refused(stored)
        self._runs[run.id] = run  # no checkpoint since the check: atomic within the trio run

    async def get_run(self, run_id: str) -> Run:
        """The run, or ``run_not_found``."""
        try:
            return self._runs[run_id]
        except KeyError:
            raise _not_found("run", run_id) from None

    async def list_runs(self, session_id: str, *, status: RunStatus | None = None) -> list[Run]:
        """A session's runs, oldest first."""
        runs = [r for r in self._runs.values() if r.session_id == session_id and (status is None or r.status == status)]
        runs.sort(key=lambda r: r.created_at)
        return runs

    # -- events --------------------------------------------------------------

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Assign seqs and store; an already stored id returns the stored event."""
        stored: list[Event] = []
        touched: dict[str, _Log] = {}
        by_id = self._by_id
        logs = self._logs
        # A batch is nearly always one session's: its log is looked up once, not per event.
        session_id: str | None = None
        log = _Log()
        for event in events:
            previous = by_id.get(event.id)
            if previous is not None:
                stored.append(previous)
                continue
            if event.session_id != session_id:
                session_id = event.session_id
                found = logs.get(session_id)
                if found is None:
                    found = logs[session_id] = _Log()
                log = touched[session_id] = found
            seq = log.head = log.head + 1
            sequenced = event.with_seq(seq)
            log.events.append(sequenced)
            log.seqs.append(seq)
            by_id[event.id] = sequenced
            stored.append(sequenced)
        for log in touched.values():
            log.changed.set()
            log.changed = trio.Event()
        await trio.lowlevel.checkpoint()
        return stored

    async def append_owned_events(
        self, events: Sequence[Event], on_taken: Callable[[], object] | None = None
    ) -> list[Event]:
        """``append_events`` of events the caller gives up (:class:`asm.ports.OwnedAppend`):
        a run's write queue hands over the fresh events of one session (new ids; no
        transform hook kept one) and holds none of them after. Each is sequenced in place
        instead of copied, with no lookup of its id: the in-memory store's share of a
        streamed run's cost per event. (``on_taken`` is not called: the append is done
        as soon as it has taken them.)"""
        if not events:
            return []
        session_id = events[0].session_id
        log = self._logs.get(session_id)
        if log is None:
            log = self._logs[session_id] = _Log()
        by_id = self._by_id
        first = seq = log.head
        for event in events:
            seq += 1
            _set_seq_in_place(event, seq)
            by_id[event.id] = event
        log.head = seq
        log.events.extend(events)
        log.seqs.extend(range(first + 1, seq + 1))
        log.changed.set()
        log.changed = trio.Event()
        await trio.lowlevel.checkpoint()
        return list(events)

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
        """Events with ``after < seq < before``, oldest first, at most ``limit``."""
        validate_page_args(after, before, limit)
        wanted = parse_event_types(types)
        log = self._logs.get(session_id)
        if log is None:
            log = _Log()
        end = log.head if before is None else min(log.head, before - 1)
        seqs = log.seqs
        window = log.events[bisect.bisect_right(seqs, after) : bisect.bisect_right(seqs, end)]
        if wanted is not None or run_id is not None:
            window = [
                e
                for e in window
                if (wanted is None or e.data.type in wanted) and (run_id is None or e.run_id == run_id)
            ]
        await trio.lowlevel.checkpoint()
        if limit is not None and len(window) > limit:
            page = window[:limit]
            return Page(tuple(page), page[-1].seq or after, has_more=True)
        # Nothing more matched up to ``end``: the cursor may skip filtered-out events.
        return Page(tuple(window), max(after, end), has_more=False)

    async def wait_for_events(
        self,
        session_id: str,
        *,
        after: int,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> Page:
        """The events after ``after`` once there are any, or an empty page after ``timeout``."""
        validate_page_args(after, None, limit)
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while True:
                log = self._logs.get(session_id)
                if log is None:
                    log = self._logs[session_id] = _Log()
                if log.head > after:
                    break
                await log.changed.wait()
        return await self.read_events(session_id, after=after, limit=limit)

    async def latest_seq(self, session_id: str) -> int:
        """The highest stored seq of the session, 0 if none."""
        log = self._logs.get(session_id)
        return log.head if log is not None else 0

    async def count_events(self, session_id: str) -> int:
        """How many events the session's log holds (a compacted range counts once)."""
        log = self._logs.get(session_id)
        return len(log.events) if log is not None else 0

    async def compact_events(self, session_id: str, *, older_than: datetime | None = None) -> Compaction:
        """Replace the redundant deltas of ``session_id`` by ``events_compacted`` markers
        (:func:`asm.stores.plan_compaction`); one pass over the log, atomic (it does not
        await in between)."""
        await self.get_session(session_id)
        log = self._logs.get(session_id)
        if log is None:
            return Compaction(session_id)
        rows = [(e.seq or 0, e.data.type.value, e.run_id, e.at, e.provider) for e in log.events]
        ranges = plan_compaction(rows, older_than=older_than)
        if not ranges:
            return Compaction(session_id)
        markers = {r.last_seq: r.marker(session_id) for r in ranges}
        gone = {seq for r in ranges for seq in range(r.first_seq, r.last_seq)}
        kept: list[Event] = []
        for event in log.events:
            seq = event.seq or 0
            if seq in gone or seq in markers:
                self._by_id.pop(event.id, None)
                if seq in gone:
                    continue
                event = markers[seq]
                self._by_id[event.id] = event
            kept.append(event)
        log.events = kept
        log.seqs = [e.seq or 0 for e in kept]
        await trio.lowlevel.checkpoint()
        deltas = sum(r.count for r in ranges)
        return Compaction(session_id, deltas, len(ranges), len({r.run_id for r in ranges}))


def _not_found(kind: str, ident: str) -> AsmError:
    return AsmError(
        f"{kind}_not_found", f"{kind} {ident!r} does not exist; check the id", details={f"{kind}_id": ident}
    )


class InMemoryArtifactStore:
    """Blobs in a dict, with the same key rules as every artifact store."""

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, Artifact]] = {}

    async def __aenter__(self) -> InMemoryArtifactStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to release."""

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterator[bytes],
        *,
        content_type: str | None = None,
    ) -> Artifact:
        """Store ``data`` under ``key`` (replacing what was there)."""
        validate_artifact_key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            blob = bytes(data)
        elif hasattr(data, "__aiter__"):
            blob = b"".join([bytes(chunk) async for chunk in data])
        else:
            raise AsmError(
                "validation_error",
                f"artifact data must be bytes or an async iterator of bytes, not {type(data).__name__}",
            )
        artifact = Artifact(
            key=key,
            size=len(blob),
            content_type=content_type,
            sha256=hashlib.sha256(blob).hexdigest(),
            created_at=utcnow(),
        )
        self._blobs[key] = (blob, artifact)
        await trio.lowlevel.checkpoint()
        return artifact

    async def get(self, key: str) -> bytes:
        """The blob under ``key``, or ``artifact_not_found``."""
        return self._lookup(key)[0]

    async def open_read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob in chunks of ``chunk_size`` bytes."""
        blob = self._lookup(key)[0]
        for start in range(0, len(blob), chunk_size):
            await trio.lowlevel.checkpoint()
            yield blob[start : start + chunk_size]

    async def stat(self, key: str) -> Artifact:
        """The blob's description."""
        return self._lookup(key)[1]

    async def delete(self, key: str) -> None:
        """Delete ``key`` if present."""
        validate_artifact_key(key)
        self._blobs.pop(key, None)

    async def list(self, prefix: str = "") -> list[Artifact]:
        """Artifacts whose key starts with ``prefix``, by key."""
        return [self._blobs[k][1] for k in sorted(self._blobs) if k.startswith(prefix)]

    def _lookup(self, key: str) -> tuple[bytes, Artifact]:
        validate_artifact_key(key)
        try:
            return self._blobs[key]
        except KeyError:
            raise AsmError(
                "artifact_not_found", f"artifact {key!r} does not exist; list keys with .list()", details={"key": key}
            ) from None
