"""Values to rows and back, through asm's one cattrs converter (private)."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from asm import AsmError, Event, Run, RunStatus, Session, SessionStatus
from asm.serde import structure, unstructure
from asm_sqlalchemy._codec import decode_page, decode_row

__all__ = [
    "KEPT_PAGE",
    "decode_events",
    "decode_log",
    "decode_run",
    "decode_session",
    "decode_stored",
    "gc_paused",
    "keep_built",
    "naive_utc",
    "run_row",
    "run_usage_columns",
    "session_row",
]


def naive_utc(value: datetime) -> datetime:
    """``value`` in UTC without tzinfo: how datetimes are kept in columns
    (naive values are taken to be UTC already)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def session_row(session: Session) -> dict[str, Any]:
    """The column values of ``session``."""
    return {
        "id": session.id,
        "agent_id": session.agent_id,
        "status": session.status.value,
        "provider": session.provider,
        "created_at": naive_utc(session.created_at),
        "updated_at": naive_utc(session.updated_at),
        "parent_session_id": session.parent_session_id,
        "body": _dumps(unstructure(session)),
    }


def run_usage_columns(body: str) -> dict[str, Any] | None:
    """The usage columns (model, tokens, cost) of a run stored as ``body``
    JSON; ``None`` if the JSON is unreadable (the migration then leaves zeros)."""
    try:
        raw = json.loads(body)
        usage = raw.get("usage") or {}
        result = raw.get("result") or {}
        options = (raw.get("input") or {}).get("options") or {}
        model = raw.get("model") or result.get("model") or options.get("model")
        cost = raw.get("cost") or result.get("cost") or {}
        return {
            "model": model if isinstance(model, str) else None,
            "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)),
            "cache_read_tokens": int(usage.get("cache_read_tokens", 0)),
            "cache_write_tokens": int(usage.get("cache_write_tokens", 0)),
            "cost_usd": float(cost["total_usd"]) if "total_usd" in cost else None,
        }
    except (ValueError, TypeError, AttributeError):
        return None


def run_row(run: Run, *, host: str, pid: int) -> dict[str, Any]:
    """The column values of ``run``; a running run is owned by its ``owner``, else ``host``/``pid``."""
    body = _dumps(unstructure(run))
    # Run.model is the model the run used (set by the manager whatever the run's end);
    # records saved before it existed fall back to the result's, then the option.
    model = run.model
    if model is None and run.result is not None and run.result.model:
        model = run.result.model
    elif model is None and isinstance(run.input.options.get("model"), str):
        model = run.input.options["model"]
    # The run's cost: reported by the provider or computed from pricing tables (None: unknown).
    cost = run.cost if run.cost is not None else (run.result.cost if run.result is not None else None)
    cost_usd = float(cost.total_usd) if cost is not None else None
    running = run.status.value == "running"
    if running and run.owner is not None:
        host, pid = run.owner.host, run.owner.process.pid
    return {
        "id": run.id,
        "session_id": run.session_id,
        "status": run.status.value,
        "provider": run.provider,
        "created_at": naive_utc(run.created_at),
        "body": body,
        "model": model,
        "input_tokens": run.usage.input_tokens,
        "output_tokens": run.usage.output_tokens,
        "cache_read_tokens": run.usage.cache_read_tokens,
        "cache_write_tokens": run.usage.cache_write_tokens,
        "cost_usd": cost_usd,
        "owner_host": host if running else None,
        "owner_pid": pid if running else None,
    }


def _corrupt(kind: str, ident: str, problem: str) -> AsmError:
    return AsmError(
        "storage_read_failed",
        f"{kind} {ident} is corrupt in the database ({problem}); restore it from a backup or delete it",
        details={f"{kind}_id": ident},
    )


def decode_session(ident: str, body: str) -> Session:
    """The session stored as ``body``, or ``storage_read_failed`` naming it."""
    try:
        session = structure(json.loads(body), Session, what=f"session {ident}")
        # asm.serde's strict ``str`` hook also catches StrEnum fields: restore the enum.
        return attrs.evolve(session, status=SessionStatus(session.status))
    except (AsmError, ValueError) as exc:
        raise _corrupt("session", ident, str(exc)) from None


def decode_run(ident: str, body: str) -> Run:
    """The run stored as ``body``, or ``storage_read_failed`` naming it."""
    try:
        run = structure(json.loads(body), Run, what=f"run {ident}")
        return attrs.evolve(run, status=RunStatus(run.status))
    except (AsmError, ValueError) as exc:
        raise _corrupt("run", ident, str(exc)) from None


def decode_stored(row: Sequence[Any]) -> Event:
    """The event stored in ``row`` (:data:`~asm_sqlalchemy._codec.ROW_COLUMNS`, either body
    form), or ``storage_read_failed`` naming its id and seq (the other events stay readable)."""
    ident, seq = row[2], row[1]
    try:
        event = decode_row(row)
    except AsmError as exc:
        raise AsmError(
            "storage_read_failed",
            f"event {ident} (seq {seq}) is corrupt in the database ({exc.message}); "
            "read around it with after=/before=, or delete the row",
            details={"event_id": ident, "seq": seq},
        ) from None
    if event.seq != seq or event.id != ident:  # a whole event's body that is not this row's
        raise AsmError(
            "storage_read_failed",
            f"event {ident} (seq {seq}) is corrupt in the database (its JSON says id {event.id}, seq {event.seq})",
            details={"event_id": ident, "seq": seq},
        )
    return event


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while reading a page of events (as
    Mercurial's ``nogc`` does for bulk loads).

    Every row, event and payload built then outlives the loop and none is part
    of a cycle, so the collections those allocations would trigger find
    nothing, yet on long pages they cost more than decoding itself. An
    application that turned the collector off keeps it off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: A page of at least this many events read is moved to the oldest generation (:func:`keep_built`).
KEPT_PAGE: Final = 1_000


def keep_built() -> None:
    """Call at the end of a :func:`gc_paused` block that built a long page of events to hand on.

    The first young collection after the pause would still walk all of it (a tenth of a
    replay went there), and the next middle one again. It is moved to the oldest
    generation instead, with ``gc.freeze()`` then ``gc.unfreeze()`` (constant time), to be
    walked only by a full collection, if it is still alive by then. Whatever else was young
    goes with it: garbage in a cycle among it waits for that full collection, so this is
    for long pages only (replays), not for every small read. Not done when the application
    froze objects itself (as a pre-fork server does): unfreezing would undo that.

    >>> with gc_paused():
    ...     page = [object() for _ in range(10_000)]
    ...     keep_built()
    >>> gc.get_count()[0] < 700
    True
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def decode_events(rows: Iterable[Sequence[Any]]) -> tuple[Event, ...]:
    """The events stored in ``rows`` (see :func:`decode_stored`)."""
    return tuple([decode_stored(row) for row in rows])


def decode_log(session_id: str, rows: Sequence[Sequence[Any]]) -> tuple[Event, ...]:
    """The events stored in one session's rows (:data:`~asm_sqlalchemy._codec.PAGE_COLUMNS`),
    as :func:`decode_events` reads them, the common ones on the fast path."""
    return tuple(decode_page(session_id, rows, decode_stored))
