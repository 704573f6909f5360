"""Stores shipped with asm-core, and helpers every store plugin uses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import trio

from asm.errors import AsmError
from asm.events import RUN_END_TYPES, Event, EventsCompacted, EventType
from asm.model import ForkPoint, Run, Session, new_id, utcnow
from asm.states import RunStatus, SessionStatus

if TYPE_CHECKING:
    from asm.ports import SessionStore

__all__ = [
    "COMPACT_BATCH",
    "MAX_SEQ",
    "Compaction",
    "CompactRange",
    "PromptLimiter",
    "claim_refused",
    "compaction_batches",
    "fork_by_copy",
    "plan_compaction",
    "parse_event_types",
    "session_artifact_key",
    "session_artifact_prefix",
    "validate_artifact_key",
    "validate_artifact_prefix",
    "validate_page_args",
]

_KEY_SEGMENT: Final = re.compile(r"^[A-Za-z0-9._@+=,-]+$")
_PREFIX_TAIL: Final = re.compile(r"^[A-Za-z0-9._@+=,-]*$")
MAX_KEY_LENGTH: Final = 1024
#: Longest segment: a file name on common filesystems holds 255 bytes, and a
#: store may add a suffix of its own (a temporary name while writing).
MAX_SEGMENT_LENGTH: Final = 200


class PromptLimiter:
    """A :class:`trio.CapacityLimiter` for ``trio.to_thread.run_sync(..., limiter=...)``
    that takes a free thread without yielding first: the thread starts before any other
    task runs (the call still checkpoints while it waits for the thread).

    A plain ``CapacityLimiter`` yields on acquiring even when a token is free. A run's
    write queue calls the store right after waking the run's provider (there is room
    again), and the provider, running first, fills the queue before the commit's thread
    even starts: appends and streaming then take turns instead of overlapping.

    >>> async def main() -> int:
    ...     return await trio.to_thread.run_sync(lambda: 42, limiter=PromptLimiter(4))
    >>> trio.run(main)
    42
    """

    def __init__(self, total_tokens: int) -> None:
        self._limiter = trio.CapacityLimiter(total_tokens)

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Take a token for ``borrower``: at once if one is free, else wait for one."""
        try:
            self._limiter.acquire_on_behalf_of_nowait(borrower)
        except trio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(borrower)

    def release_on_behalf_of(self, borrower: object) -> None:
        """Give ``borrower``'s token back."""
        self._limiter.release_on_behalf_of(borrower)


def validate_artifact_key(key: str) -> str:
    """Return ``key`` if it is a safe relative path, else raise ``validation_error``.

    >>> validate_artifact_key("runs/run_1/patch.diff")
    'runs/run_1/patch.diff'
    >>> validate_artifact_key("../etc/passwd")
    Traceback (most recent call last):
    ...
    asm.errors.ValidationError: artifact key '../etc/passwd' is not allowed: ...
    """
    problem = None
    if not isinstance(key, str) or not key:
        problem = "it is empty"
    elif len(key) > MAX_KEY_LENGTH:
        problem = f"it is longer than {MAX_KEY_LENGTH} characters"
    elif key.startswith("/"):
        problem = "it is absolute"
    else:
        for segment in key.split("/"):
            if segment in ("", ".", ".."):
                problem = "it has an empty, '.' or '..' segment"
                break
            if not _KEY_SEGMENT.match(segment):
                problem = "it has characters other than letters, digits and ._@+=,-"
                break
            if len(segment) > MAX_SEGMENT_LENGTH:
                problem = f"a segment is longer than {MAX_SEGMENT_LENGTH} characters"
                break
    if problem:
        raise AsmError(
            "validation_error",
            f"artifact key {key!r} is not allowed: {problem}; use a relative path like 'runs/<id>/out.txt'",
            details={"key": key},
        )
    return key


def validate_artifact_prefix(prefix: str) -> str:
    """Return ``prefix`` if ``list(prefix)`` may use it, else raise ``validation_error``.

    A prefix is a plain string prefix of keys: whole segments, then possibly
    the start of one (``"runs/run_1/pa"``). Its whole segments follow the key
    rules, so a prefix cannot reach outside the store either.

    >>> validate_artifact_prefix("sessions/ses_1/")
    'sessions/ses_1/'
    >>> validate_artifact_prefix("../")
    Traceback (most recent call last):
    ...
    asm.errors.ValidationError: artifact prefix '../' is not allowed: ...
    """
    if not isinstance(prefix, str):
        raise AsmError("validation_error", f"artifact prefix must be a string, not {type(prefix).__name__}")
    folder, _, tail = prefix.rpartition("/")
    try:
        if folder or prefix.startswith("/"):
            validate_artifact_key(folder)
        if not _PREFIX_TAIL.match(tail) or len(prefix) > MAX_KEY_LENGTH:
            raise AsmError("validation_error", "")
    except AsmError:
        raise AsmError(
            "validation_error",
            f"artifact prefix {prefix!r} is not allowed: it must be the start of a valid key, like 'sessions/<id>/'",
            details={"prefix": prefix},
        ) from None
    return prefix


#: Where a session's artifacts live: every key under ``sessions/<session_id>/``.
SESSION_ARTIFACTS: Final = "sessions"


def session_artifact_prefix(session_id: str) -> str:
    """The key prefix of a session's artifacts (the convention ``asm artifacts list`` reads).

    >>> session_artifact_prefix("ses_1")
    'sessions/ses_1/'
    """
    return validate_artifact_key(f"{SESSION_ARTIFACTS}/{session_id}") + "/"


def session_artifact_key(session_id: str, *parts: str) -> str:
    """A key under the session's prefix: ``sessions/<session_id>/<parts...>``, validated.

    Runs put theirs under ``runs/<run_id>/``, e.g. a workspace patch:

    >>> session_artifact_key("ses_1", "runs", "run_2", "workspace.patch")
    'sessions/ses_1/runs/run_2/workspace.patch'
    >>> session_artifact_key("ses_1", "../x")
    Traceback (most recent call last):
    ...
    asm.errors.ValidationError: artifact key 'sessions/ses_1/../x' is not allowed: ...
    """
    if not parts:
        raise AsmError("validation_error", "session_artifact_key needs at least one part after the session id")
    return validate_artifact_key("/".join((SESSION_ARTIFACTS, session_id, *parts)))


#: Events copied per append by :func:`fork_by_copy` (one page read, one group commit).
FORK_BATCH: Final = 1000


async def fork_by_copy(store: SessionStore, session_id: str, *, at_seq: int) -> Session:
    """``store.fork_session`` for any store: save a new ``pending`` session like
    ``session_id`` with ``forked_from`` set, then append copies of its first
    ``at_seq`` events (new ids; type, data, time, run and provider as they were),
    a page at a time: O(at_seq) reads and writes, seqs 1..at_seq.

    >>> fork = await fork_by_copy(store, session.id, at_seq=12)  # doctest: +SKIP
    """
    original = await store.get_session(session_id)
    latest = await store.latest_seq(session_id)
    if isinstance(at_seq, bool) or not isinstance(at_seq, int) or not 1 <= at_seq <= latest:
        raise AsmError(
            "validation_error",
            f"at_seq={at_seq!r} is outside session {session_id}'s log; pass a seq from 1 to {latest}",
            details={"session_id": session_id, "latest_seq": latest},
        )
    now = utcnow()
    fork = attrs.evolve(
        original,
        id=new_id("ses"),
        status=SessionStatus.PENDING,
        created_at=now,
        updated_at=now,
        error=None,
        one_shot=False,
        forked_from=ForkPoint(session_id, at_seq),
    )
    await store.save_session(fork)
    after = copied = 0
    while after < at_seq:
        page = await store.read_events(session_id, after=after, before=at_seq + 1, limit=FORK_BATCH)
        copies = [_copy(e, fork.id, copied + i + 1) for i, e in enumerate(page.events)]
        if copies:
            await store.append_events(copies)
            copied += len(copies)
        if not page.has_more:
            break
        after = page.cursor
    return fork


def _copy(event: Event, session_id: str, seq: int) -> Event:
    """``event`` as the fork's ``seq``-th event (nobody else knows the new session yet:
    its seqs are 1, 2, 3, ...). A fork's log is dense: an ``events_compacted`` marker
    it copies stands alone at ``seq``, which its ``first_seq``/``last_seq`` name
    (``count`` still says how many deltas of the original it stands for)."""
    data = event.data
    if isinstance(data, EventsCompacted):
        data = attrs.evolve(data, first_seq=seq, last_seq=seq)
    # Built directly: attrs.evolve costs a third of a fork's time in this process.
    return Event(new_id("evt"), session_id, event.run_id, data, event.at, None, event.provider, event.schema_version)


def claim_refused(stored: Run) -> AsmError:
    """The ``invalid_operation`` a store raises from ``claim_run`` when the stored
    run is no longer ``pending``: another process (or task) claimed it first.

    >>> from asm.model import RunInput
    >>> claim_refused(Run("run_1", "ses_1", RunInput.coerce("hi"), status="completed")).message
    'run run_1 has already ended (completed); start a new run to go again'
    """
    if stored.status is RunStatus.RUNNING:
        by = f" in process {stored.owner.describe()}" if stored.owner is not None else ""
        message = f"run {stored.id} is already running{by}; wait for it, or cancel it there"
    elif stored.status.is_terminal:
        message = f"run {stored.id} has already ended ({stored.status.value}); start a new run to go again"
    else:
        message = f"run {stored.id} is {stored.status.value}, not pending; only a pending run can be executed"
    details = {"run_id": stored.id, "status": stored.status.value}
    return AsmError("invalid_operation", message, details=details)


def parse_event_types(types: Iterable[EventType | str] | None) -> frozenset[EventType] | None:
    """Normalize a ``types=`` filter; an unknown type is a ``validation_error``.
    A filter with ``message_streamed`` also gets ``events_compacted``: a reader of
    deltas sees the markers standing for compacted ones, never a silent gap.

    >>> sorted(parse_event_types(["run_started"]))
    [<EventType.RUN_STARTED: 'run_started'>]
    """
    if types is None:
        return None
    if isinstance(types, str):
        types = [types]
    parsed = set()
    for value in types:
        try:
            parsed.add(EventType(value))
        except ValueError:
            raise AsmError(
                "validation_error",
                f"unknown event type {value!r} in types=; valid types are: {', '.join(t.value for t in EventType)}",
                details={"type": value},
            ) from None
    if EventType.MESSAGE_STREAMED in parsed:
        # A reader of deltas is told where compaction took some away (see plan_compaction).
        parsed.add(EventType.EVENTS_COMPACTED)
    return frozenset(parsed)


#: The largest seq, cursor or limit a store takes: a 64-bit signed integer, as the databases keep it.
MAX_SEQ: Final = 2**63 - 1


def validate_page_args(after: int, before: int | None, limit: int | None) -> None:
    """Reject cursors and limits outside ``0 .. 2**63 - 1`` with ``invalid_cursor`` /
    ``validation_error`` (a database would overflow on a larger one)."""

    def bad(value: object, low: int) -> bool:
        return isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SEQ

    if bad(after, 0):
        raise AsmError("invalid_cursor", f"after={after!r} must be an integer seq from 0 to 2**63-1")
    if before is not None and bad(before, 1):
        raise AsmError("invalid_cursor", f"before={before!r} must be an integer seq from 1 to 2**63-1")
    if limit is not None and bad(limit, 1):
        raise AsmError("validation_error", f"limit={limit!r} must be an integer from 1 to 2**63-1, or None")


# -- compaction ----------------------------------------------------------------

#: Deltas one compaction transaction replaces at most (a longer range gets several markers).
COMPACT_BATCH: Final = 2000

_DELTA: Final = EventType.MESSAGE_STREAMED.value
_ANSWER: Final = EventType.MESSAGE_RECEIVED.value
_ENDS: Final = frozenset(t.value for t in RUN_END_TYPES)


@attrs.frozen
class CompactRange:
    """``count`` deltas of run ``run_id`` next to each other in a session's log, at
    seqs ``first_seq`` .. ``last_seq``: compaction deletes those before ``last_seq``
    and replaces the one at ``last_seq`` by :meth:`marker` (with the last delta's
    time and provider)."""

    first_seq: int
    last_seq: int
    count: int
    run_id: str
    at: datetime
    provider: str | None = None

    def marker(self, session_id: str, at: datetime | None = None) -> Event:
        """The ``events_compacted`` event that takes ``last_seq``."""
        data = EventsCompacted(self.first_seq, self.last_seq, self.count, self.run_id)
        return Event(new_id("evt"), session_id, self.run_id, data, at or self.at, self.last_seq, self.provider)


@attrs.frozen
class Compaction:
    """What ``SessionStore.compact_events`` did to a session: ``deltas`` streamed
    deltas replaced by ``markers`` ``events_compacted`` markers, of ``runs`` runs."""

    session_id: str
    deltas: int = 0
    markers: int = 0
    runs: int = 0

    @property
    def removed(self) -> int:
        """How many fewer events the log holds."""
        return self.deltas - self.markers


#: One event of a session's log as compaction needs it: seq, type name, run id, time, provider.
LogRow = tuple[int, str, str | None, datetime, str | None]


def plan_compaction(
    rows: Iterable[LogRow], *, older_than: datetime | None = None, max_range: int = COMPACT_BATCH
) -> list[CompactRange]:
    """The ranges of a session's log (``rows``, every event in seq order, no bodies
    needed) whose ``message_streamed`` deltas are redundant: those of runs that
    ended (a ``run_completed``/``failed``/``cancelled``/``timeout`` is stored) and
    stored a ``message_received`` - the transcript reads that, never their deltas.
    With ``older_than``, only runs that ended before it (compare like with like:
    both aware or both naive UTC).

    A range is a maximal stretch of one run's deltas with nothing else between
    them (thinking deltas, tool calls, another run's deltas and earlier markers
    all end one), cut every ``max_range`` deltas. Every store's ``compact_events``
    can use it: read the rows, then apply the ranges a batch per transaction.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> rows = [(1, "run_started", "r", t, None), (2, "message_streamed", "r", t, None),
    ...         (3, "message_streamed", "r", t, None), (4, "message_received", "r", t, None),
    ...         (5, "run_completed", "r", t, None)]
    >>> [(r.first_seq, r.last_seq, r.count) for r in plan_compaction(rows)]
    [(2, 3, 2)]
    """
    rows = rows if isinstance(rows, list) else list(rows)
    answered: set[str] = set()
    ended: dict[str, datetime] = {}
    for _seq, kind, run_id, at, _provider in rows:
        if run_id is not None:
            if kind == _ANSWER:
                answered.add(run_id)
            elif kind in _ENDS:
                ended[run_id] = at
    done = {r for r in answered if r in ended and (older_than is None or ended[r] < older_than)}
    ranges: list[CompactRange] = []
    first = last = count = 0
    run: str | None = None
    at_last: datetime | None = None
    provider: str | None = None
    for seq, kind, run_id, at, row_provider in rows:
        if kind == _DELTA and run_id in done:
            if run is not None and run_id == run and count < max_range:
                last, count, at_last, provider = seq, count + 1, at, row_provider
                continue
            if run is not None:
                assert at_last is not None
                ranges.append(CompactRange(first, last, count, run, at_last, provider))
            first = last = seq
            count, run, at_last, provider = 1, run_id, at, row_provider
        elif run is not None:
            assert at_last is not None
            ranges.append(CompactRange(first, last, count, run, at_last, provider))
            run = None
    if run is not None:
        assert at_last is not None
        ranges.append(CompactRange(first, last, count, run, at_last, provider))
    return ranges


def compaction_batches(ranges: list[CompactRange], size: int = COMPACT_BATCH) -> list[list[CompactRange]]:
    """``ranges`` in groups of about ``size`` deltas: one transaction each."""
    batches: list[list[CompactRange]] = []
    current: list[CompactRange] = []
    total = 0
    for item in ranges:
        if current and total + item.count > size:
            batches.append(current)
            current, total = [], 0
        current.append(item)
        total += item.count
    if current:
        batches.append(current)
    return batches
