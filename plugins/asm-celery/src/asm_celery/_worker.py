"""The worker side: one trio loop per ``asm worker`` process that executes the
runs Celery hands it (private).

Celery's ``threads`` pool gives each delivered task a thread; the thread hands
the run to the process's one trio loop (``trio.from_thread.run``) and blocks
until it has ended. So every run of a process shares one runtime: one store
connection pool, one LISTEN connection, one heartbeat — and a process holds as
many concurrent I/O-bound runs as its ``concurrency``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Literal

import attrs
import trio

from asm import AsmError, Run, RunStatus
from asm.config import LoadedConfig
from asm.events import (
    RUN_END_TYPES,
    EventData,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunTimeout,
)
from asm.model import RESUME, ErrorInfo, ProviderError, RunOwner, utcnow
from asm.owners import current_owner, owner_state, stop_orphans
from asm.plugins import PluginRegistry
from asm.runtime import Runtime, open_runtime
from asm_celery._ledger import Claim, Ledger, LedgerRow
from asm_celery._options import CeleryOptions
from asm_celery._store import ledger_for

__all__ = ["Outcome", "WorkerHost", "end_event", "end_run"]

log = logging.getLogger("asm_celery")

#: What a task does with its message: ack it, put it back at the queue's end, or requeue it as is.
Outcome = Literal["ran", "done", "covered", "unknown", "requeue", "reject"]


async def end_run(runtime: Runtime, run: Run, status: RunStatus, data: EventData, info: ErrorInfo) -> Run:
    """End ``run`` (not executing anywhere) as ``status``: the final record, then its
    end event (``data``), as the manager orders them."""
    ended = attrs.evolve(run, status=status, ended_at=utcnow(), error=info)
    await runtime.store.save_run(ended)
    await runtime.manager.record_event(run.session_id, data, run_id=run.id, provider=run.provider)
    return ended


def worker_state(owner: RunOwner) -> str:
    """:func:`asm.owners.owner_state`, with a zombie (a worker killed and not yet
    reaped by its parent) counted as dead: it will never renew its lease."""
    state = owner_state(owner)
    if state == "alive" and owner.host == socket.gethostname():
        try:
            stat = Path(f"/proc/{owner.process.pid}/stat").read_bytes()
        except OSError:
            return state
        if stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X"):
            return "dead"
    return state


def end_event(run: Run) -> EventData:
    """The end event of ``run``, an ended run, as its record says it ended."""
    error = run.error
    if run.status is RunStatus.COMPLETED:
        return RunCompleted(run.result.stop_reason if run.result else None, run.usage, run.model)
    if run.status is RunStatus.CANCELLED:
        return RunCancelled(error.message if error else None)
    if run.status is RunStatus.TIMEOUT:
        return RunTimeout(float((error.details or {}).get("timeout_s", 0.0)) if error else 0.0)
    if error is None:
        return RunFailed("internal_error", "the run failed")
    return RunFailed(error.code, error.message, error.retryable, error.provider_error)


class WorkerHost:
    """The trio side of one ``asm worker`` process. :meth:`start` opens the runtime
    (refusing SQLite and a database with pending migrations) in a thread of its
    own; :meth:`handle` is what each Celery task calls."""

    def __init__(
        self,
        config: LoadedConfig,
        options: CeleryOptions,
        *,
        worker_id: str | None = None,
        registry: PluginRegistry | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.worker_id = worker_id or f"asm-{os.getpid()}@{socket.gethostname()}"
        self._registry = registry
        self.draining = False
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._runtime: Runtime | None = None
        self._ledger: Ledger | None = None
        self._owner: RunOwner = current_owner()
        self._active: dict[str, int] = {}
        self._cancelling: set[str] = set()
        self._changed = trio.Event()
        self._listen_stop = threading.Event()

    # -- from Celery's threads -------------------------------------------------

    def start(self) -> None:
        """Open the runtime in the trio thread; raise what opening it raised."""
        self._thread = threading.Thread(target=self._thread_main, name="asm-trio", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def handle(self, run_id: str) -> Outcome:
        """Execute the task of ``run_id`` (blocking this thread until it is done); what to
        do with its message: ack it (``ran``, ``done``, ``covered``, ``unknown``), send it to
        the end of the queue (``requeue``) or put it back as the worker stops (``reject``)."""
        assert self._token is not None
        outcome: Outcome = trio.from_thread.run(self._handle, run_id, trio_token=self._token)
        return outcome

    def stopping(self) -> bool:
        """Whether a SIGTERM came (set from Celery's signal handler: read it anew each time)."""
        return self.draining

    def begin_shutdown(self, **_: Any) -> None:
        """SIGTERM (Celery's warm shutdown): claim nothing more; after ``grace_period``
        cancel the runs still executing, so they are stored ``cancelled``."""
        self.draining = True
        if self._token is not None:
            self._token.run_sync_soon(self._start_grace)

    def stop(self) -> None:
        """End the trio loop (after Celery has stopped) and close the runtime."""
        if self._token is not None and self._stop is not None:
            self._token.run_sync_soon(self._stop.set)
        if self._thread is not None:
            self._thread.join()

    # -- the trio loop ---------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        async with open_runtime(self.config, registry=self._registry) as runtime:
            ledger = ledger_for(runtime, connections=self.options.ledger_connections, name=self.worker_id)
            try:
                await ledger.heartbeat(self.worker_id, self.options.lease_s)  # creates the table if needed
                self._runtime, self._ledger = runtime, ledger
                self._stop = trio.Event()
                self._token = trio.lowlevel.current_trio_token()
                listener = threading.Thread(
                    target=ledger.listen, args=(self._listen_stop, self._notified), name="asm-listen", daemon=True
                )
                listener.start()
                try:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._heartbeats)
                        self._ready.set()
                        await self._stop.wait()
                        nursery.cancel_scope.cancel()
                finally:
                    self._listen_stop.set()
                    await trio.to_thread.run_sync(listener.join)
            finally:
                await trio.to_thread.run_sync(ledger.close)

    def _notified(self, payload: str) -> None:
        """(The listener thread.) A NOTIFY: a slot freed, or a cancel request."""
        token = self._token
        if token is None:
            return
        kind, _, ident = payload.partition(":")
        if kind == "cancel":
            token.run_sync_soon(self._cancel_soon, ident, None)
        else:
            token.run_sync_soon(self._wake)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _start_grace(self) -> None:
        assert self._nursery is not None
        self._wake()  # runs waiting for their turn give up now
        self._nursery.start_soon(self._grace)

    async def _grace(self) -> None:
        await trio.sleep(self.options.grace_period)
        for run_id in list(self._active):
            log.warning("run %s did not end within the grace period; cancelling it", run_id)
            self._cancel_soon(run_id, f"worker {self.worker_id} stopped (grace period over)")

    def _cancel_soon(self, run_id: str, reason: str | None) -> None:
        if run_id in self._active and run_id not in self._cancelling and self._nursery is not None:
            self._cancelling.add(run_id)
            self._nursery.start_soon(self._cancel, run_id, reason)

    async def _cancel(self, run_id: str, reason: str | None) -> None:
        assert self._runtime is not None and self._ledger is not None
        try:
            if reason is None:
                row = await self._ledger.get(run_id)
                reason = (row.cancel_reason if row is not None else None) or "cancelled"
            await self._runtime.manager.cancel_run(run_id, reason=reason)
        except AsmError as exc:
            log.warning("cancelling run %s: %s", run_id, exc)
        finally:
            self._cancelling.discard(run_id)

    async def _heartbeats(self) -> None:
        assert self._ledger is not None
        while True:
            await trio.sleep(self.options.heartbeat_s)
            try:
                rows = await self._ledger.heartbeat(self.worker_id, self.options.lease_s)
            except AsmError as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for run_id, requested, reason in rows:
                if requested:
                    self._cancel_soon(run_id, reason)

    # -- one task ----------------------------------------------------------------

    async def _handle(self, token: str) -> Outcome:
        """A task is a token for its run's session: claim what of that session may
        start (its run, or whichever is next in line, or one a lost worker left) and
        execute it. Then, if the session has more runs waiting, the token goes to the
        back of the queue: the sessions take turns (a session with many runs queued
        does not keep a slot while others wait)."""
        runtime, ledger = self._runtime, self._ledger
        assert runtime is not None and ledger is not None
        if self.draining:
            return "reject"
        claim = await self._next(token)
        if isinstance(claim, str):
            return claim
        row = claim.row
        assert row is not None
        self._active[row.run_id] = row.attempt
        try:
            await self._execute(runtime, claim)
        finally:
            del self._active[row.run_id]
            # Never leave an ended run "running" under this worker's lease, cancelled or not.
            with trio.CancelScope(shield=True):
                more = await ledger.finish(row.run_id, worker_id=self.worker_id, attempt=row.attempt)
        if not more:
            return "ran"
        # Stopping: back to the queue as it is, for another worker to take at once.
        return "reject" if self.stopping() else "requeue"

    async def _next(self, token: str) -> Claim | Outcome:
        """The next claim for ``token``'s session, waiting (bounded) while only
        ``max_parallel_runs`` or a live lease on another host stands in the way."""
        runtime, ledger, options = self._runtime, self._ledger, self.options
        assert runtime is not None and ledger is not None
        deadline = trio.current_time() + options.claim_wait
        while True:
            changed = self._changed
            claim = await ledger.claim_next(
                token,
                worker_id=self.worker_id,
                owner=self._owner,
                lease_s=options.lease_s,
                max_parallel_runs=runtime.config.max_parallel_runs,
                owner_state=worker_state,
            )
            if claim.outcome == "unknown":
                try:
                    await runtime.store.get_run(token)
                    why = "the run was not submitted through asm-celery"
                except AsmError as exc:
                    if exc.code != "run_not_found":
                        raise
                    why = "no such run in the store"
                log.warning("task for run %s: %s; acked, not retried", token, why)
                return "unknown"
            if claim.outcome in ("done", "covered"):
                return claim.outcome
            if claim.outcome in ("claimed", "takeover"):
                return claim
            if self.draining:
                return "reject"
            left = deadline - trio.current_time()
            if left <= 0:
                if claim.outcome == "busy":
                    # Its owner may be lost (a machine gone): it is taken over once its lease expires.
                    lease = claim.row.lease_expires_at if claim.row is not None else None
                    log.warning("task for run %s: %s (until %s); back to the queue", token, claim.why, lease)
                return "requeue"
            with trio.move_on_after(min(left, options.poll_interval)):
                await changed.wait()

    async def _execute(self, runtime: Runtime, claim: Claim) -> None:
        row = claim.row
        assert row is not None
        if claim.outcome == "claimed" and not row.cancel_requested:
            # A fresh claim: the run was pending in the ledger, so it is pending in the store
            # (a run ended before it is claimed is marked done in the ledger first), and
            # execute_run checks that itself.
            await self._run(runtime, row.run_id, row.run_timeout)
            return
        run = await runtime.store.get_run(row.run_id)
        if run.status.is_terminal:
            # Its last owner ended it and died before saying so in the ledger (perhaps
            # before storing the end event, which comes after the final record).
            told = await runtime.store.read_events(run.session_id, run_id=run.id, types=RUN_END_TYPES, limit=1)
            if not told.events:
                await runtime.manager.record_event(run.session_id, end_event(run), run_id=run.id, provider=run.provider)
            return
        if claim.outcome == "takeover":
            assert claim.previous is not None
            run = await self._take_over(runtime, run, claim.previous)
            if run.status.is_terminal:
                return
        if row.cancel_requested:
            reason = row.cancel_reason or "cancelled"
            if run.status is RunStatus.PENDING:
                await runtime.manager.cancel_run(run.id, reason=reason)
            return
        await self._run(runtime, run.id, row.run_timeout)

    async def _run(self, runtime: Runtime, run_id: str, timeout: float | None) -> None:
        """Execute the claimed run ``run_id``; a run refused before it started is stored failed."""
        try:
            await runtime.manager.execute_run(run_id, timeout=timeout)
        except AsmError as exc:
            current = await runtime.store.get_run(run_id)
            if current.status is RunStatus.PENDING:
                # Refused before it started (the session ended, an unknown provider, ...): never left pending.
                info = ErrorInfo(exc.code, exc.message, exc.retryable)
                await end_run(runtime, current, RunStatus.FAILED, RunFailed(exc.code, exc.message), info)
            elif not current.status.is_terminal:
                raise

    async def _take_over(self, runtime: Runtime, run: Run, previous: LedgerRow) -> Run:
        """The attempt of a lost worker: marked in the log, then restarted, resumed or failed."""
        old = previous.owner
        who = f"worker {previous.worker_id}" + (f" ({old.describe()})" if old is not None else "")
        if old is not None and worker_state(old) == "dead":
            await stop_orphans(old)
        if run.status is RunStatus.PENDING:
            return run  # it never started: nothing was interrupted
        lost = self.options.on_worker_lost
        then = "cancel" if previous.cancel_requested else lost
        log.warning("%s stopped while executing attempt %d of run %s; then: %s", who, previous.attempt, run.id, then)
        await runtime.manager.record_event(
            run.session_id, RunInterrupted(previous.attempt, who, then), run_id=run.id, provider=run.provider
        )
        if previous.cancel_requested:
            reason = previous.cancel_reason or "cancelled"
            info = ErrorInfo("cancelled", f"run was cancelled ({reason})")
            return await end_run(runtime, run, RunStatus.CANCELLED, RunCancelled(reason), info)
        if lost == "fail":
            text = f"run was interrupted: {who} stopped; run it again"
            error = ProviderError(run.provider or "unknown", "interrupted", text)
            info = ErrorInfo("provider_error", text, retryable=True, provider_error=error)
            return await end_run(runtime, run, RunStatus.FAILED, RunFailed(info.code, info.message, True, error), info)
        again = run.input if lost == "restart" else attrs.evolve(run.input, continuation=RESUME)
        restarted = attrs.evolve(run, status=RunStatus.PENDING, started_at=None, owner=None, input=again)
        await runtime.store.save_run(restarted)
        return restarted
