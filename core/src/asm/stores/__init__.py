"""Stores shipped with asm-core, and helpers every store plugin uses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import attrs

from asm.errors import AsmError
from asm.events import EventType
from asm.model import ForkPoint, Run, Session, new_id, utcnow
from asm.states import RunStatus, SessionStatus

if TYPE_CHECKING:
    from asm.ports import SessionStore

__all__ = [
    "MAX_SEQ",
    "claim_refused",
    "fork_by_copy",
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
    after = 0
    while after < at_seq:
        page = await store.read_events(session_id, after=after, before=at_seq + 1, limit=FORK_BATCH)
        copies = [attrs.evolve(e, id=new_id("evt"), session_id=fork.id, seq=None) for e in page.events]
        if copies:
            await store.append_events(copies)
        if not page.has_more:
            break
        after = page.cursor
    return fork


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
