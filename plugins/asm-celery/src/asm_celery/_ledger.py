"""The dispatch ledger: one row per run submitted through Celery, in the store's
PostgreSQL database (private).

``asm_celery_runs`` says where each run is in its distributed life (``pending``:
published, not yet claimed; ``running``: claimed by a worker, under a lease;
``done``) and holds what the claim needs: the session's submit order (the seq of
the run's ``run_queued`` event), the session's ``max_concurrent_runs``, the owner
and its lease, and a cancel request. Every claim is one transaction holding an
advisory lock (the session's, or a global one when ``max_parallel_runs`` is set),
so per-session FIFO, the per-session limit and the global limit hold across every
worker on every machine. The table is created on first use (``IF NOT EXISTS``
under an advisory lock) and is the plugin's own: it is not part of
asm-sqlalchemy's alembic schema.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import attrs
import trio
from asm_sqlalchemy import ping_idle_connections
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from asm import AsmError
from asm.model import RunOwner
from asm.redaction import mask_url
from asm.serde import converter

__all__ = ["Claim", "Ledger", "LedgerRow"]

T = TypeVar("T")

#: The NOTIFY channel: ``slot:<session_id>`` when a run of the session is done (ended, or cancelled
#: while queued), ``cancel:<run_id>`` for a cancel request.
CHANNEL: Final = "asm_celery"

_LOCK_SCHEMA: Final = 0x61736D63  # "asmc"

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS asm_celery_runs (
        run_id varchar(64) PRIMARY KEY,
        session_id varchar(64) NOT NULL,
        queued_seq bigint NOT NULL,
        state varchar(16) NOT NULL,
        max_concurrent_runs integer NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        run_timeout double precision,
        worker_id varchar(255),
        token varchar(64),
        owner text,
        lease_expires_at timestamptz,
        cancel_requested boolean NOT NULL DEFAULT false,
        cancel_reason text,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS asm_celery_runs_open ON asm_celery_runs (session_id, state, queued_seq) "
    "WHERE state <> 'done'",
    "CREATE INDEX IF NOT EXISTS asm_celery_runs_running ON asm_celery_runs (worker_id) WHERE state = 'running'",
)

Outcome = Literal["claimed", "takeover", "covered", "wait", "busy", "done", "unknown"]

#: The columns of a row as :func:`_row` reads them (``lease_expired`` as the database's clock says).
_COLUMNS: Final = (
    "run_id, session_id, queued_seq, state, max_concurrent_runs, attempt, run_timeout, worker_id, token, owner, "
    "lease_expires_at, coalesce(lease_expires_at < now(), true) AS lease_expired, cancel_requested, cancel_reason"
)

#: Claim a run for a worker (a new attempt under a fresh lease, carried by task ``token``), returning its row.
_TAKE: Final = (
    "UPDATE asm_celery_runs SET state = 'running', attempt = attempt + 1, worker_id = %(worker)s, "
    "owner = %(owner)s, token = %(token)s, lease_expires_at = now() + make_interval(secs => %(lease)s) "
    f"WHERE run_id = %(id)s RETURNING {_COLUMNS}"
)

#: The run's session, once this transaction holds the claim lock (the session's, or the global
#: one): one round trip for the look-up and the lock.
_LOCK: Final = (
    "SELECT session_id, pg_advisory_xact_lock(hashtext(CASE WHEN %(everywhere)s THEN 'asm_celery:*' "
    "ELSE 'asm_celery:' || session_id END)) FROM asm_celery_runs WHERE run_id = %(id)s"
)

#: The session's open rows, locked, in submit order; with ``max_parallel_runs``, each carries the
#: count of runs running everywhere (read after the global lock was taken, so it is exact).
_OPEN: Final = (
    f"SELECT {_COLUMNS}, CASE WHEN %(everywhere)s THEN (SELECT count(*) FROM asm_celery_runs "
    "WHERE state = 'running') END AS everywhere FROM asm_celery_runs "
    "WHERE session_id = %(sid)s AND state <> 'done' ORDER BY queued_seq FOR UPDATE"
)

#: ``-> done`` if still this worker's attempt, telling waiting claimers that a slot freed;
#: whether the session has runs waiting (the CTE's update is not visible to the subquery: the
#: row was running, not pending, anyway).
_FINISH: Final = (
    "WITH ended AS (UPDATE asm_celery_runs SET state = 'done', lease_expires_at = NULL "
    "WHERE run_id = %(id)s AND worker_id = %(worker)s AND attempt = %(attempt)s RETURNING session_id) "
    f"SELECT pg_notify('{CHANNEL}', 'slot:' || session_id), EXISTS (SELECT 1 FROM asm_celery_runs AS r "
    "WHERE r.session_id = ended.session_id AND r.state = 'pending') FROM ended"
)


@attrs.frozen
class LedgerRow:
    """A run's ledger row as read."""

    run_id: str
    session_id: str
    queued_seq: int
    state: str
    max_concurrent_runs: int
    attempt: int
    run_timeout: float | None
    worker_id: str | None
    token: str | None
    owner: RunOwner | None
    lease_expires_at: datetime | None
    lease_expired: bool
    cancel_requested: bool
    cancel_reason: str | None


@attrs.frozen
class Claim:
    """What a claim found (see :meth:`Ledger.claim_next`): ``claimed`` (``row`` is now
    ours), ``takeover`` (ours, after its owner died or its lease ran out: ``previous``
    is that owner's row), ``covered`` (other workers run the session's runs), ``wait``
    (``max_parallel_runs``: ``why``), ``busy`` (a live lease on another host),
    ``done`` (nothing left in the session) or ``unknown`` (no such run in the ledger)."""

    outcome: Outcome
    row: LedgerRow | None = None
    previous: LedgerRow | None = None
    why: str = ""


def _owner_json(owner: RunOwner) -> str:
    return json.dumps(converter.unstructure(owner))


def _owner(raw: str | None) -> RunOwner | None:
    return converter.structure(json.loads(raw), RunOwner) if raw else None


def _row(values: Any) -> LedgerRow:
    return LedgerRow(
        run_id=values.run_id,
        session_id=values.session_id,
        queued_seq=values.queued_seq,
        state=values.state,
        max_concurrent_runs=values.max_concurrent_runs,
        attempt=values.attempt,
        run_timeout=values.run_timeout,
        worker_id=values.worker_id,
        token=values.token,
        owner=_owner(values.owner),
        lease_expires_at=values.lease_expires_at,
        lease_expired=bool(values.lease_expired),
        cancel_requested=values.cancel_requested,
        cancel_reason=values.cancel_reason,
    )


_SELECT: Final = f"SELECT {_COLUMNS} FROM asm_celery_runs"


class Ledger:
    """The ``asm_celery_runs`` table of one PostgreSQL database, used from trio
    (each call runs in a worker thread). At most ``connections`` connections are
    open (besides :meth:`listen`'s): a claim is a short transaction, and every
    worker and client on the database holds such a pool, which PostgreSQL's
    ``max_connections`` must cover (docs/scaling.md)."""

    def __init__(self, url: URL, *, connections: int = 2, name: str = "asm-celery") -> None:
        if url.get_backend_name() != "postgresql":
            raise AsmError(
                "invalid_config",
                f"the celery server backend needs a PostgreSQL store, not {url.get_backend_name()} "
                f"({mask_url(url.render_as_string(hide_password=False))}): workers on several machines "
                'share one database; set store = "sqlalchemy" with [stores.sqlalchemy] '
                'url = "postgresql+psycopg://user:pw@host:5432/db"',
                details={"key": "store"},
            )
        self.url = url
        self.name = name
        self._engine: Engine = create_engine(
            url,
            pool_size=connections,
            max_overflow=0,
            connect_args={"application_name": name[:63]},
        )
        ping_idle_connections(self._engine)
        self._limiter = trio.CapacityLimiter(connections)
        self._ready = False
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the connections."""
        self._engine.dispose()

    async def _call(self, fn: Callable[[Connection], T], doing: str) -> T:
        def call() -> T:
            try:
                self._ensure()
                with self._engine.connect() as conn, conn.begin():
                    return fn(conn)
            except SQLAlchemyError as exc:
                where = mask_url(self.url.render_as_string(hide_password=False))
                raise AsmError(
                    "storage_error", f"{doing} failed on {where}: {exc.__class__.__name__}: {exc}".splitlines()[0]
                ) from None

        return await trio.to_thread.run_sync(call, limiter=self._limiter)

    def _ensure(self) -> None:
        with self._lock:
            if self._ready:
                return
            with self._engine.connect() as conn, conn.begin():
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_SCHEMA})
                for statement in _SCHEMA:
                    conn.execute(text(statement))
            self._ready = True

    # -- the client side --------------------------------------------------------

    async def add(
        self, run_id: str, session_id: str, queued_seq: int, max_concurrent_runs: int, run_timeout: float | None
    ) -> None:
        """Record a run about to be published (``pending``)."""

        def add(conn: Connection) -> None:
            conn.exec_driver_sql(
                "INSERT INTO asm_celery_runs (run_id, session_id, queued_seq, state, max_concurrent_runs, "
                "run_timeout) VALUES (%(run_id)s, %(session_id)s, %(seq)s, 'pending', %(limit)s, %(timeout)s)",
                {
                    "run_id": run_id,
                    "session_id": session_id,
                    "seq": queued_seq,
                    "limit": max_concurrent_runs,
                    "timeout": run_timeout,
                },
            )

        await self._call(add, f"recording run {run_id}")

    async def get(self, run_id: str) -> LedgerRow | None:
        """The run's row, or ``None``."""

        def get(conn: Connection) -> LedgerRow | None:
            found = conn.exec_driver_sql(f"{_SELECT} WHERE run_id = %(id)s", {"id": run_id}).first()
            return _row(found) if found is not None else None

        return await self._call(get, f"reading run {run_id}")

    async def open_rows_of(self, session_ids: Iterable[str]) -> dict[str, list[LedgerRow]]:
        """The runs not yet done of each of ``session_ids`` (one read), in submit order."""
        wanted = list(dict.fromkeys(session_ids))

        def rows(conn: Connection) -> dict[str, list[LedgerRow]]:
            found = conn.exec_driver_sql(
                f"{_SELECT} WHERE session_id = ANY(%(sids)s) AND state <> 'done' ORDER BY queued_seq",
                {"sids": wanted},
            )
            by_session: dict[str, list[LedgerRow]] = {sid: [] for sid in wanted}
            for values in found:
                by_session[values.session_id].append(_row(values))
            return by_session

        return await self._call(rows, f"reading the runs of {len(wanted)} sessions")

    async def pending_count(self, session_id: str) -> int:
        """How many runs of the session wait for a worker."""

        def count(conn: Connection) -> int:
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM asm_celery_runs WHERE session_id = %(sid)s AND state = 'pending'",
                {"sid": session_id},
            )
            return int(found.scalar_one())

        return await self._call(count, f"counting the queued runs of session {session_id}")

    async def cancel_pending(self, run_id: str) -> bool:
        """``pending -> done`` (a queued run is cancelled before any worker claims it);
        whether it was still pending."""

        def cancel(conn: Connection) -> bool:
            found = conn.exec_driver_sql(
                "UPDATE asm_celery_runs SET state = 'done' WHERE run_id = %(id)s AND state = 'pending'", {"id": run_id}
            )
            return bool(found.rowcount)

        return await self._call(cancel, f"cancelling run {run_id}")

    async def announce_done(self, session_id: str) -> None:
        """Tell every listener that a run of ``session_id`` is done (a queued run the
        client cancelled, once the store has it ended; a worker's finish says it itself)."""

        def announce(conn: Connection) -> None:
            conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', 'slot:' || %(sid)s)", {"sid": session_id})

        await self._call(announce, f"announcing the end of a run of session {session_id}")

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        """Ask whichever worker runs ``run_id`` to cancel it (NOTIFY, and the flag its
        heartbeat reads); whether the run was running."""

        def request(conn: Connection) -> bool:
            found = conn.exec_driver_sql(
                "WITH asked AS (UPDATE asm_celery_runs SET cancel_requested = true, cancel_reason = %(why)s "
                "WHERE run_id = %(id)s AND state = 'running' RETURNING run_id) "
                f"SELECT pg_notify('{CHANNEL}', 'cancel:' || run_id) FROM asked",
                {"id": run_id, "why": reason},
            )
            return found.first() is not None

        return await self._call(request, f"requesting the cancel of run {run_id}")

    async def finish(self, run_id: str, *, worker_id: str, attempt: int) -> bool:
        """``-> done`` if still ``worker_id``'s attempt ``attempt``; tell waiting claimers.
        Whether the session has runs waiting for a worker (``False`` when the attempt was
        no longer this worker's: its new owner goes on with the session)."""

        def finish(conn: Connection) -> bool:
            found = conn.exec_driver_sql(_FINISH, {"id": run_id, "worker": worker_id, "attempt": attempt}).first()
            return bool(found is not None and found[1])

        return await self._call(finish, f"finishing run {run_id}")

    # -- the worker side --------------------------------------------------------

    async def claim_next(
        self,
        token: str,
        *,
        worker_id: str,
        owner: RunOwner,
        lease_s: float,
        max_parallel_runs: int | None,
        owner_state: Callable[[RunOwner], str],
    ) -> Claim:
        """Make progress on the session of run ``token`` (the run whose task this
        worker holds): take over a run of it whose owner is dead or whose lease has
        expired, else claim its oldest pending run if the session has fewer than
        ``max_concurrent_runs`` running and (when set) fewer than ``max_parallel_runs``
        run everywhere. One transaction under the session's advisory lock (a global
        one with ``max_parallel_runs``), so of several workers exactly one claims.

        ``covered``: nothing to claim, and runs of the session are running under live
        leases (their workers put the session's token back in the queue when they end); ``busy``: a run this token
        carried runs on another host under a lease not yet expired; ``wait``: only
        ``max_parallel_runs`` stands in the way."""
        everywhere = max_parallel_runs is not None

        def claim(conn: Connection) -> Claim:
            found = conn.exec_driver_sql(_LOCK, {"id": token, "everywhere": everywhere}).first()
            if found is None:
                return Claim("unknown")
            session_id = found[0]
            rows = []
            running_everywhere = 0
            for values in conn.exec_driver_sql(_OPEN, {"sid": session_id, "everywhere": everywhere}):
                rows.append(_row(values))
                running_everywhere = values.everywhere or 0
            if not rows:
                return Claim("done")
            take = {"worker": worker_id, "owner": _owner_json(owner), "lease": lease_s, "token": token}
            running = [row for row in rows if row.state == "running"]
            busy = False
            for row in running:
                if row.worker_id == worker_id:
                    continue  # this worker runs it, in another of its tasks
                state = owner_state(row.owner) if row.owner is not None else "unknown"
                if state == "dead" or row.lease_expired:
                    taken = conn.exec_driver_sql(_TAKE, {**take, "id": row.run_id}).one()
                    return Claim("takeover", _row(taken), previous=row)
                if row.token == token and state == "unknown":
                    busy = True  # its holder (on another host) may be gone: wait for the lease
            if busy:
                mine = next(row for row in running if row.token == token)
                why = f"its run {mine.run_id} runs on another host under a live lease (worker {mine.worker_id})"
                return Claim("busy", mine, why=why)
            pending = [row for row in rows if row.state == "pending"]
            if not pending:
                return Claim("covered" if running else "done")
            head = pending[0]
            if len(running) >= head.max_concurrent_runs:
                return Claim("covered", head, why=f"session {session_id} runs {len(running)}")
            if max_parallel_runs is not None and running_everywhere >= max_parallel_runs:
                why = f"{running_everywhere} runs run (max_parallel_runs={max_parallel_runs})"
                return Claim("covered" if running else "wait", head, why=why)
            taken = conn.exec_driver_sql(_TAKE, {**take, "id": head.run_id}).one()
            return Claim("claimed", _row(taken))

        return await self._call(claim, f"claiming a run for task {token}")

    async def heartbeat(self, worker_id: str, lease_s: float) -> list[tuple[str, bool, str | None]]:
        """Renew the leases of ``worker_id``'s running runs: ``(run_id, cancel_requested, reason)`` each."""

        def beat(conn: Connection) -> list[tuple[str, bool, str | None]]:
            found = conn.exec_driver_sql(
                "UPDATE asm_celery_runs SET lease_expires_at = now() + make_interval(secs => %(lease)s) "
                "WHERE worker_id = %(worker)s AND state = 'running' "
                "RETURNING run_id, cancel_requested, cancel_reason",
                {"worker": worker_id, "lease": lease_s},
            )
            return [(r.run_id, r.cancel_requested, r.cancel_reason) for r in found]

        return await self._call(beat, f"renewing the leases of worker {worker_id}")

    def listen(
        self, stop: threading.Event, deliver: Callable[[str], None], listening: threading.Event | None = None
    ) -> None:
        """(Blocking, for a thread of its own.) LISTEN on the channel and hand each
        payload to ``deliver`` until ``stop`` is set; ``listening`` is set once it listens."""
        import psycopg

        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, application_name=self.name[:63]) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if listening is not None:
                        listening.set()
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            deliver(notify.payload)
            except psycopg.Error:
                stop.wait(1.0)  # the heartbeat's polling covers the gap; try again
