"""The client: a SessionServer whose runs Celery workers execute (private)."""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import attrs
import trio
from celery import Celery

from asm import AsmError, Run, RunStatus, Session
from asm.concurrency import ConcurrencyLimiter
from asm.events import RUN_END_TYPES, EventType, RunFailed, RunQueued
from asm.model import ErrorInfo
from asm.ports import EventCallback, Provider, PubSub
from asm.pubsub import Subscription, open_subscription
from asm.runtime import Runtime
from asm.server import ServerStatus, resolve_session
from asm_celery._app import TASK_NAME, make_app
from asm_celery._ledger import Ledger, LedgerRow
from asm_celery._options import CeleryOptions, celery_options
from asm_celery._store import ledger_for
from asm_celery._worker import end_run

__all__ = ["CelerySessionServer", "open_session_server"]


class CelerySessionServer:
    """A :class:`asm.SessionServer` with the same methods whose runs are executed by
    ``asm worker`` processes on any machine: made by :func:`open_session_server`
    (or by ``asm.open_session_server(runtime)`` with ``[server] backend = "celery"``).

    ``submit`` stores the run ``pending`` with ``run_queued``, records it in the
    dispatch ledger, then publishes its task; ``wait`` sleeps until the ledger says
    that a run of the session is done; ``cancel`` reaches a run queued or executing on any worker."""

    def __init__(
        self,
        runtime: Runtime,
        session_id: str,
        *,
        client: _Client,
        provider: str | None,
        max_concurrent_runs: int,
        max_queued_runs: int,
        run_timeout: float | None,
        on_event: EventCallback | None,
    ) -> None:
        self.runtime = runtime
        self.manager = runtime.manager
        self.session_id = session_id
        self.max_concurrent_runs = max_concurrent_runs
        self.max_queued_runs = max_queued_runs
        self.options = client.options
        self.app = client.app
        self.limiter: ConcurrencyLimiter | None = None
        self._client = client
        self._ledger = client.ledger
        self._provider = provider
        self._run_timeout = run_timeout
        self._on_event = on_event
        self._submitted: dict[str, RunStatus | None] = {}
        self._submit_lock = trio.Lock()
        self._draining = False
        self._closed = False
        self._queued: tuple[str, ...] = ()
        self._running: tuple[str, ...] = ()
        #: Where subscriptions take live events from: the PubSub of a configured pub/sub
        #: sink (asm-redis's ``[sinks.redis]``, which the workers publish on), else the store.
        pubsubs = [getattr(sink, "pubsub", None) for sink in runtime.sinks]
        self.follow: Literal["store"] | PubSub = next((p for p in pubsubs if isinstance(p, PubSub)), "store")

    # -- the API -----------------------------------------------------------------

    async def submit(
        self,
        input: object,
        *,
        provider: Provider | str | None = None,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Queue a run for the workers and return its id (``run_queued`` is stored
        before the task is published). ``queue_full`` when ``max_queued_runs`` runs
        of the session wait; ``server_draining`` after :meth:`drain`. A broker that
        cannot be reached fails the run (stored ``failed``) and raises
        ``storage_connection_failed`` naming the broker without its password."""
        if provider is not None and not isinstance(provider, str):
            raise AsmError(
                "validation_error",
                "a run for Celery workers names its provider (provider='name', built by each worker from its "
                "config), not a provider object",
            )
        async with self._submit_lock:
            self._check_open()
            waiting = await self._ledger.pending_count(self.session_id)
            if waiting >= self.max_queued_runs:
                raise AsmError(
                    "queue_full",
                    f"session {self.session_id} already has {waiting} runs queued "
                    f"(max_queued_runs={self.max_queued_runs}); retry later or raise max_queued_runs",
                    details={"session_id": self.session_id, "max_queued_runs": self.max_queued_runs},
                )
            run = await self.manager.start_run(
                self.session_id, input, provider=provider or self._provider, options=options, metadata=metadata
            )
            try:
                queued = await self.manager.record_event(
                    self.session_id,
                    RunQueued(waiting + 1),
                    run_id=run.id,
                    provider=run.provider,
                    on_event=self._on_event,
                )
                assert queued.seq is not None
                await self._ledger.add(
                    run.id,
                    self.session_id,
                    queued.seq,
                    self.max_concurrent_runs,
                    timeout if timeout is not None else self._run_timeout,
                )
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.manager.cancel_run(run.id, reason="not queued")
                raise
            self._submitted[run.id] = None
            await self._publish(run)
            return run.id

    async def wait(self, run_id: str, *, timeout: float | None = None) -> Run:
        """The run once it has ended, wherever it ran (woken by the ledger's notification
        that a run of the session is done; the run is read again every ``lease_s / 3`` too).
        ``run_not_found`` for a run of another session; ``timeout`` when
        ``timeout`` seconds pass first (the run goes on)."""
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while True:
                # Taken before the read, so that a run ending after it still wakes this task.
                done = self._client.done_event(self.session_id)
                run = await self._own_run(run_id)
                # Ended: its record is final first, then its end event is stored; both are in.
                if run.status.is_terminal and await self._told_end(run_id):
                    return self._ended(run)
                # The ledger's notification that a run of the session is done (sent once its end
                # is stored), or, should one be missed (the listener reconnecting), a while.
                with trio.move_on_after(self.options.lease_s / 3):
                    await done.wait()
        raise AsmError(
            "timeout",
            f"run {run_id} did not end within {timeout:g}s; it goes on (wait again, or cancel it)",
            details={"run_id": run_id},
        )

    async def _told_end(self, run_id: str) -> bool:
        store = self.runtime.store
        return bool((await store.read_events(self.session_id, run_id=run_id, types=RUN_END_TYPES, limit=1)).events)

    def _ended(self, run: Run) -> Run:
        if run.id in self._submitted:
            self._submitted[run.id] = run.status
        return run

    async def cancel(self, run_id: str, *, reason: str | None = None) -> Run:
        """Cancel a run queued (it is never executed) or executing on any worker
        (the worker is told through the ledger and LISTEN/NOTIFY) and return it
        once it has ended; a run that already ended is returned as is."""
        run = await self._own_run(run_id)
        if run.status.is_terminal:
            return run
        row = await self._ledger.get(run_id)
        if row is None:
            raise AsmError(
                "run_not_found",
                f"run {run_id!r} was not submitted through the celery backend; cancel it where it runs",
                details={"run_id": run_id},
            )
        if row.state == "pending" and await self._ledger.cancel_pending(run_id):
            with trio.CancelScope(shield=True):
                cancelled = await self.manager.cancel_run(run_id, reason=reason or "cancelled while queued")
                await self._ledger.announce_done(self.session_id)
                return cancelled
        if row.state != "done":
            await self._ledger.request_cancel(run_id, reason or "cancelled by the client")
        return await self.wait(run_id)

    async def drain(self, *, timeout: float | None = None) -> None:
        """Stop accepting runs (``submit`` now raises ``server_draining``), then wait
        until every run submitted here has ended. ``timeout`` when ``timeout``
        seconds pass first (the runs go on)."""
        self._draining = True
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            for run_id in list(self._submitted):
                await self.wait(run_id)
            return
        left = [run_id for run_id, status in self._submitted.items() if status is None]
        raise AsmError(
            "timeout",
            f"drain did not finish within {timeout:g}s: {len(left)} runs have not ended; wait longer or cancel them",
            details={"session_id": self.session_id},
        )

    @property
    def free_slots(self) -> int:
        """The session's run slots not in use (as of the last refresh)."""
        return max(0, self.max_concurrent_runs - len(self._running))

    def status(self) -> ServerStatus:
        """A snapshot as of the last refresh (:meth:`refresh`, done after each call
        and every ``poll_interval`` seconds): queued and running runs of the session
        on every worker, and how the runs submitted here ended."""
        counts = dict.fromkeys(RunStatus, 0)
        for status in self._submitted.values():
            if status is not None:
                counts[status] += 1
        return ServerStatus(
            session_id=self.session_id,
            queued=self._queued,
            running=self._running,
            max_concurrent_runs=self.max_concurrent_runs,
            max_queued_runs=self.max_queued_runs,
            free_slots=self.free_slots,
            completed=counts[RunStatus.COMPLETED],
            failed=counts[RunStatus.FAILED],
            cancelled=counts[RunStatus.CANCELLED],
            timed_out=counts[RunStatus.TIMEOUT],
            draining=self._draining,
            subscribers=0,
        )

    async def refresh(self) -> ServerStatus:
        """Read the session's queued and running runs from the ledger and the
        outcomes of the runs submitted here from the store; the new :meth:`status`.
        (The servers of one runtime are refreshed together, in one ledger read.)"""
        await self._client.refresh()
        return self.status()

    async def _take(self, rows: list[LedgerRow]) -> None:
        """The session's open ledger rows, as read by the client's refresh."""
        still_open = {row.run_id for row in rows}
        # A run's worker marks it done in the ledger just after storing its end: only the runs
        # that left the open rows since the last refresh can have ended.
        for run_id, status in list(self._submitted.items()):
            if status is None and run_id not in still_open:
                with contextlib.suppress(AsmError):
                    run = await self.runtime.store.get_run(run_id)
                    if run.status.is_terminal:
                        self._submitted[run_id] = run.status
        ended = {run_id for run_id, status in self._submitted.items() if status is not None}
        self._queued = tuple(row.run_id for row in rows if row.state == "pending")
        self._running = tuple(row.run_id for row in rows if row.state == "running" and row.run_id not in ended)

    def subscribe(
        self,
        *,
        after: int = 0,
        types: Iterable[EventType | str] | None = None,
        run_id: str | None = None,
        buffer: int = 1000,
        follow: Literal["manager", "store"] = "store",
    ) -> AbstractAsyncContextManager[Subscription]:
        """``async with server.subscribe(after=seq) as events``: the session's events
        stored after ``after``, then live ones as the workers store them: through
        Redis when the config has asm-redis's ``[sinks.redis]`` (every process
        publishes what it stores there; :attr:`follow`), else through the store
        (LISTEN/NOTIFY on PostgreSQL). ``follow`` is accepted for the
        SessionServer's signature; in-process following means nothing here."""
        return open_subscription(
            self.manager, self.session_id, after=after, types=types, run_id=run_id, buffer=buffer, follow=self.follow
        )

    # -- internals -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._draining or self._closed:
            why = "is draining" if self._draining else "is closed"
            raise AsmError(
                "server_draining",
                f"the server of session {self.session_id} {why} and accepts no more runs; open a new server",
                details={"session_id": self.session_id},
            )

    async def _own_run(self, run_id: str) -> Run:
        with contextlib.suppress(AsmError):
            run = await self.runtime.store.get_run(run_id)
            if run.session_id == self.session_id:
                return run
        raise AsmError(
            "run_not_found",
            f"run {run_id!r} was not submitted to the server of session {self.session_id}; check the id",
            details={"run_id": run_id, "session_id": self.session_id},
        )

    async def _publish(self, run: Run) -> None:
        options = self.options

        def send() -> None:
            self.app.send_task(
                TASK_NAME,
                args=[run.id],
                queue=options.queue,
                routing_key=options.queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
            )

        try:
            await trio.to_thread.run_sync(send)
        except Exception as exc:  # noqa: BLE001 - whatever the broker client raised, the run must not be lost
            masked = options.masked_broker_url
            why = _without_secret(f"{type(exc).__name__}: {exc}", options.broker_url, masked)
            error = AsmError(
                "storage_connection_failed",
                f"could not publish run {run.id} to the Celery broker at {masked} ({why}); the run is marked "
                "failed. Check that the broker runs and [celery] broker_url",
                details={"run_id": run.id, "broker_url": masked},
            )
            with trio.CancelScope(shield=True):
                if await self._ledger.cancel_pending(run.id):
                    info = ErrorInfo(error.code, error.message, error.retryable)
                    stored = await self.runtime.store.get_run(run.id)
                    await end_run(self.runtime, stored, RunStatus.FAILED, RunFailed(error.code, error.message), info)
                    self._submitted[run.id] = RunStatus.FAILED
                    await self._ledger.announce_done(self.session_id)
            raise error from None

    async def _refresher(self) -> None:
        while True:
            await trio.sleep(self.options.poll_interval)
            with contextlib.suppress(AsmError):
                await self._client.refresh(unless_within=self.options.poll_interval)

    async def _close(self) -> None:
        """Leaving the block: the runs submitted here that have not ended are
        cancelled (queued ones at once, executing ones on their worker)."""
        self._closed = True
        with trio.CancelScope(shield=True):
            for run_id, status in list(self._submitted.items()):
                if status is None:
                    with contextlib.suppress(AsmError):
                        await self.cancel(run_id, reason="server closed")


def _without_secret(text: str, url: str, masked: str) -> str:
    """``text`` with ``url`` (and its password, wherever it appears) masked."""
    from urllib.parse import urlsplit

    text = text.replace(url, masked)
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


@contextlib.asynccontextmanager
async def open_session_server(
    target: Runtime,
    provider: Provider | str | None = None,
    *,
    session: str | Session | None = None,
    agent_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_concurrent_runs: int = 1,
    max_queued_runs: int = 100,
    limiter: ConcurrencyLimiter | None = None,  # noqa: ARG001 - the workers enforce limits in the database
    run_timeout: float | None = None,
    on_event: EventCallback | None = None,
) -> AsyncIterator[CelerySessionServer]:
    """Serve one session's runs through Celery workers until the block ends
    (:func:`asm.open_session_server`'s arguments; ``target`` must be a runtime, whose
    ``[celery]`` table names the broker and whose store is PostgreSQL). The limits
    are enforced by the workers at claim time: ``max_concurrent_runs`` per session
    (given here), ``max_parallel_runs`` across all (the workers' config). Leaving
    the block cancels the runs submitted here that have not ended; call
    :meth:`CelerySessionServer.drain` first to let them finish."""
    if not isinstance(target, Runtime):
        raise AsmError(
            "validation_error",
            "the celery server backend is opened on a runtime (asm.open_runtime()), whose config names the "
            "broker and the PostgreSQL store",
        )
    for name, value, minimum in (
        ("max_concurrent_runs", max_concurrent_runs, 1),
        ("max_queued_runs", max_queued_runs, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise AsmError("validation_error", f"{name} must be an int >= {minimum}, not {value!r}")
    if provider is not None and not isinstance(provider, str):
        raise AsmError(
            "validation_error",
            "the celery server backend takes a provider name (each worker builds it from its config), not an object",
        )
    async with _shared(target) as client:
        manager = target.manager
        name = provider or target.config.provider
        session_id = await resolve_session(manager, session, provider=name, agent_id=agent_id, metadata=metadata)
        server = CelerySessionServer(
            target,
            session_id,
            client=client,
            provider=name,
            max_concurrent_runs=max_concurrent_runs,
            max_queued_runs=max_queued_runs,
            run_timeout=run_timeout,
            on_event=on_event,
        )
        client.servers.add(server)
        try:
            await server.refresh()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server._refresher)
                try:
                    yield server
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            client.servers.discard(server)
            await server._close()


@attrs.define(eq=False)
class _Client:
    """What the servers on one store share: the ledger (a connection pool), the Celery app
    (a producer pool), one refresh of their status for all of them, and one thread that
    listens for the ledger's notifications that runs are done (what ``wait`` waits for)."""

    options: CeleryOptions
    ledger: Ledger
    app: Celery
    users: int = 0
    servers: set[CelerySessionServer] = attrs.field(factory=set)
    refreshed_at: float = -math.inf
    refreshing: trio.Lock = attrs.field(factory=trio.Lock)
    done: dict[str, trio.Event] = attrs.field(factory=dict)
    stop_listening: threading.Event = attrs.field(factory=threading.Event)
    listener: threading.Thread | None = None

    def done_event(self, session_id: str) -> trio.Event:
        """Set when the ledger next says that a run of ``session_id`` is done."""
        event = self.done.get(session_id)
        if event is None:
            event = self.done[session_id] = trio.Event()
        return event

    async def start_listening(self) -> None:
        """Start the listener thread; return once it listens (or after a few seconds: until
        it does, ``wait`` reads its run every ``lease_s / 3`` seconds)."""
        token = trio.lowlevel.current_trio_token()
        listening = threading.Event()

        def deliver(payload: str) -> None:  # in the listener thread
            kind, _, session_id = payload.partition(":")
            if kind == "slot":
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(self._session_done, session_id)

        self.listener = threading.Thread(
            target=self.ledger.listen,
            args=(self.stop_listening, deliver, listening),
            name="asm-celery-listen",
            daemon=True,
        )
        self.listener.start()
        await trio.to_thread.run_sync(listening.wait, 5.0)

    def _session_done(self, session_id: str) -> None:
        event = self.done.pop(session_id, None)
        if event is not None:
            event.set()

    async def close(self) -> None:
        """Stop the listener; release the producer and connection pools."""
        self.stop_listening.set()
        if self.listener is not None:
            await trio.to_thread.run_sync(self.listener.join)
        await trio.to_thread.run_sync(self.app.close)
        await trio.to_thread.run_sync(self.ledger.close)

    async def refresh(self, *, unless_within: float = 0.0) -> None:
        """Every server's session's open ledger rows in one read, handed to each server
        (nothing when a refresh started less than ``unless_within`` seconds ago: each
        server's refresher asks every ``poll_interval``, one of them does it)."""
        async with self.refreshing:
            started = trio.current_time()
            if started - self.refreshed_at < unless_within:
                return
            servers = list(self.servers)
            rows = await self.ledger.open_rows_of(server.session_id for server in servers)
            self.refreshed_at = started
            for server in servers:
                await server._take(rows[server.session_id])


#: One ledger (connection pool) and one Celery app (producer pool) per store, shared by its servers.
_CLIENTS: weakref.WeakKeyDictionary[object, _Client] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _shared(runtime: Runtime) -> AsyncIterator[_Client]:
    key = runtime.store
    client = _CLIENTS.get(key)
    if client is None:
        options = celery_options(runtime.config)
        ledger = ledger_for(runtime, connections=options.ledger_connections, name="asm-celery client")
        client = _CLIENTS[key] = _Client(options, ledger, make_app(options))
    client.users += 1
    try:
        if client.listener is None:
            await client.start_listening()
        yield client
    finally:
        client.users -= 1
        if client.users == 0:
            del _CLIENTS[key]
            with trio.CancelScope(shield=True):
                await client.close()
