"""``SessionServer``: one session, a FIFO queue of runs, ``max_concurrent_runs`` slots.

::

    async with asm.open_session_server(store, provider, max_concurrent_runs=2) as server:
        run_id = await server.submit("summarize the repo")   # emits run_queued
        run = await server.wait(run_id)                       # the finished Run
        async with server.subscribe(after=0) as events:       # stored, then live events
            ...

Runs start in submission order (a run's ``run_started`` is stored before the
next run is started). A full queue refuses with the retryable ``queue_full``
instead of blocking. ``drain`` stops accepting runs and waits for those queued
and running; leaving the block cancels whatever is still queued or running
(each recorded as ``cancelled``), so nothing outlives the server.
"""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from asm._trio import single_errors
from asm.concurrency import ConcurrencyLimiter, LimiterStatus
from asm.errors import AsmError
from asm.events import Event, EventType, RunQueued
from asm.manager import SessionManager
from asm.model import Run, Session
from asm.ports import EventCallback, Provider, SessionStore
from asm.pubsub import Subscription, open_subscription, subscriber_count
from asm.runtime import Runtime
from asm.states import RunStatus, SessionStatus

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ServerStatus", "SessionServer", "open_session_server", "resolve_session"]

#: How many finished runs a server remembers in memory; older ones are read back from the store.
_FINISHED_KEPT = 10_000


@attrs.frozen
class ServerStatus:
    """A snapshot of a :class:`SessionServer`: run ids queued (in start
    order) and running, free slots, and how many runs ended in each way."""

    session_id: str
    queued: tuple[str, ...]
    running: tuple[str, ...]
    max_concurrent_runs: int
    max_queued_runs: int
    free_slots: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    draining: bool
    subscribers: int
    limiter: LimiterStatus | None = None


@attrs.define(eq=False)
class _Item:
    run_id: str
    provider: Provider | str | None
    timeout: float | None
    state: str = "queued"  # queued -> starting -> running -> done
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    started: trio.Event = attrs.field(factory=trio.Event)
    done: trio.Event = attrs.field(factory=trio.Event)
    run: Run | None = None
    error: AsmError | None = None
    cancel_reason: str | None = None


def _positive(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise AsmError("validation_error", f"{name} must be an int >= {minimum}, not {value!r}")
    return value


class SessionServer:
    """Queues runs for one session and executes up to ``max_concurrent_runs``
    at once. Made by :func:`open_session_server`; every method is safe to call
    from any task of the same trio run."""

    def __init__(
        self,
        manager: SessionManager,
        session_id: str,
        *,
        provider: Provider | str | None,
        max_concurrent_runs: int,
        max_queued_runs: int,
        limiter: ConcurrencyLimiter | None,
        run_timeout: float | None,
        on_event: EventCallback | None,
    ) -> None:
        self.manager = manager
        self.session_id = session_id
        self.max_concurrent_runs = max_concurrent_runs
        self.max_queued_runs = max_queued_runs
        self.limiter = limiter
        self._provider = provider
        self._run_timeout = run_timeout
        self._on_event = on_event
        self._queue: dict[str, _Item] = {}
        self._running: dict[str, _Item] = {}
        self._items: dict[str, _Item] = {}
        self._finished: deque[str] = deque()
        self._counts = dict.fromkeys(RunStatus, 0)
        self._changed = trio.Event()
        self._submit_lock = trio.Lock()
        self._draining = False
        self._closed = False
        self._nursery: trio.Nursery | None = None

    # -- the API -------------------------------------------------------------

    async def submit(
        self,
        input: object,
        *,
        provider: Provider | str | None = None,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Queue a run and return its id; emits ``run_queued`` (``position``
        counts from 1). ``server_draining`` after :meth:`drain` began;
        ``queue_full`` (retryable) when ``max_queued_runs`` runs already wait."""
        async with self._submit_lock:
            self._check_open()
            waiting = len(self._queue) - self.free_slots
            if waiting >= self.max_queued_runs:
                raise AsmError(
                    "queue_full",
                    f"session {self.session_id} already has {len(self._queue)} runs queued "
                    f"(max_queued_runs={self.max_queued_runs}); retry later or raise max_queued_runs",
                    details={"session_id": self.session_id, "max_queued_runs": self.max_queued_runs},
                )
            chosen = provider if provider is not None else self._provider
            name = chosen if isinstance(chosen, str) or chosen is None else chosen.name
            run = await self.manager.start_run(
                self.session_id, input, provider=name, options=options, metadata=metadata
            )
            position = len(self._queue) + 1
            try:
                await self.manager.record_event(
                    self.session_id, RunQueued(position), run_id=run.id, provider=run.provider, on_event=self._on_event
                )
                self._check_open()  # the server may have closed while this submit was storing
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.manager.cancel_run(run.id, reason="not queued")
                raise
            item = _Item(run.id, chosen, timeout if timeout is not None else self._run_timeout)
            self._items[run.id] = item
            self._queue[run.id] = item
            self._notify()
            return run.id

    async def wait(self, run_id: str, *, timeout: float | None = None) -> Run:
        """The run once it has ended (whatever its status; see
        ``Run.raise_for_status``). ``run_not_found`` for a run this server was
        not given; ``timeout`` when ``timeout`` seconds pass first (the run goes on)."""
        item = self._items.get(run_id)
        if item is None:
            return await self._finished_run(run_id)
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            await item.done.wait()
        if not item.done.is_set():
            raise AsmError(
                "timeout",
                f"run {run_id} did not end within {timeout:g}s; it goes on (wait again, or cancel it)",
                details={"run_id": run_id},
            )
        if item.error is not None:
            raise item.error
        assert item.run is not None
        return item.run

    async def cancel(self, run_id: str, *, reason: str | None = None) -> Run:
        """Cancel a queued or running run and return it once it has ended
        (status ``cancelled``); a run that already ended is returned as is.
        ``run_not_found`` for a run this server was not given."""
        item = self._items.get(run_id)
        if item is None:
            return await self._finished_run(run_id)
        if item.state == "queued":
            del self._queue[run_id]
            item.state = "done"
            with trio.CancelScope(shield=True):
                try:
                    run: Run | None = await self.manager.cancel_run(run_id, reason=reason or "cancelled while queued")
                except AsmError as exc:
                    item.error, run = exc, None
            self._finish(item, run)
        elif item.state == "starting":
            item.cancel_reason = reason or "cancelled while starting"
            item.scope.cancel()
        elif item.state == "running":
            await self.manager.cancel_run(run_id, reason=reason or "cancelled by the server")
        await item.done.wait()
        if item.run is None:
            raise item.error or AsmError("internal_error", f"run {run_id} ended without a result")
        return item.run

    async def drain(self, *, timeout: float | None = None) -> None:
        """Stop accepting runs (``submit`` now raises ``server_draining``),
        then wait until every queued and running run has ended. ``timeout``
        when ``timeout`` seconds pass first (the runs go on)."""
        self._draining = True
        self._notify()
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while self._queue or self._running:
                await self._changed.wait()
        if self._queue or self._running:
            raise AsmError(
                "timeout",
                f"drain did not finish within {timeout:g}s: {len(self._queue)} runs queued, "
                f"{len(self._running)} running; wait longer or cancel them",
                details={"session_id": self.session_id},
            )

    @property
    def free_slots(self) -> int:
        """Run slots of this server not in use now."""
        return self.max_concurrent_runs - len(self._running)

    def status(self) -> ServerStatus:
        """A frozen snapshot: queued and running runs, free slots, counts of ended runs."""
        counts = self._counts
        return ServerStatus(
            session_id=self.session_id,
            queued=tuple(self._queue),
            running=tuple(self._running),
            max_concurrent_runs=self.max_concurrent_runs,
            max_queued_runs=self.max_queued_runs,
            free_slots=self.free_slots,
            completed=counts[RunStatus.COMPLETED],
            failed=counts[RunStatus.FAILED],
            cancelled=counts[RunStatus.CANCELLED],
            timed_out=counts[RunStatus.TIMEOUT],
            draining=self._draining,
            subscribers=subscriber_count(self.manager, self.session_id),
            limiter=self.limiter.statistics() if self.limiter is not None else None,
        )

    def subscribe(
        self,
        *,
        after: int = 0,
        types: Iterable[EventType | str] | None = None,
        run_id: str | None = None,
        buffer: int = 1000,
        follow: Literal["manager", "store"] = "manager",
    ) -> AbstractAsyncContextManager[Subscription]:
        """``async with server.subscribe(after=seq) as events``: the session's
        events stored after ``after``, then live ones, filtered by ``types``
        and ``run_id``; ``follow="store"`` also sees events other processes
        append to a shared store (see :func:`asm.open_subscription`)."""
        return open_subscription(
            self.manager, self.session_id, after=after, types=types, run_id=run_id, buffer=buffer, follow=follow
        )

    # -- internals -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._draining or self._closed:
            why = "is draining" if self._draining else "is closed"
            raise AsmError(
                "server_draining",
                f"the server of session {self.session_id} {why} and accepts no more runs; open a new server",
                details={"session_id": self.session_id},
            )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _finished_run(self, run_id: str) -> Run:
        """A run this server ran long ago (no longer in memory), or ``run_not_found``."""
        with contextlib.suppress(AsmError):
            run = await self.manager.store.get_run(run_id)
            if run.session_id == self.session_id and run.status.is_terminal:
                return run
        raise AsmError(
            "run_not_found",
            f"run {run_id!r} was not submitted to the server of session {self.session_id}; check the id",
            details={"run_id": run_id, "session_id": self.session_id},
        )

    def _finish(self, item: _Item, run: Run | None) -> None:
        item.state = "done"
        item.run = run
        if run is not None:
            self._counts[run.status] += 1
        item.started.set()
        item.done.set()
        self._finished.append(item.run_id)
        while len(self._finished) > _FINISHED_KEPT:
            self._items.pop(self._finished.popleft(), None)
        self._notify()

    async def _dispatch(self) -> None:
        """Start queued runs in FIFO order while slots are free."""
        assert self._nursery is not None
        limiter = self.limiter
        while True:
            while not self._queue or self.free_slots <= 0:
                await self._changed.wait()
            owner = object()
            if limiter is not None:
                await limiter.acquire_run_slot(owner)
                if not self._queue:  # cancelled meanwhile
                    limiter.release_run_slot(owner)
                    continue
            run_id = next(iter(self._queue))
            item = self._queue.pop(run_id)
            item.state = "starting"
            self._running[run_id] = item
            self._nursery.start_soon(self._execute, item, owner)
            # The next run starts only after this one's run_started is stored.
            await item.started.wait()

    async def _execute(self, item: _Item, owner: object) -> None:
        user_callback = self._on_event

        def on_event(event: Event) -> Awaitable[None] | None:
            # Synchronous unless the user's callback is async: no extra await per event.
            if event.run_id == item.run_id and event.type is EventType.RUN_STARTED:
                item.state = "running"
                item.started.set()
            return user_callback(event) if user_callback is not None else None

        run: Run | None = None
        try:
            with item.scope:
                try:
                    run = await self.manager.execute_run(
                        item.run_id, provider=item.provider, on_event=on_event, timeout=item.timeout
                    )
                except AsmError as exc:
                    item.error = exc
        finally:
            with trio.CancelScope(shield=True):
                if self.limiter is not None:
                    self.limiter.release_run_slot(owner)
                del self._running[item.run_id]
                try:
                    if run is None:
                        # Cancelled or refused before it ran: never leave the run pending.
                        run = await self.manager.store.get_run(item.run_id)
                        if run.status is RunStatus.PENDING:
                            reason = item.cancel_reason or ("server closed" if self._closed else "could not start")
                            run = await self.manager.cancel_run(item.run_id, reason=reason)
                except AsmError as exc:
                    item.error = item.error or exc
                    run = None
                self._finish(item, run)

    async def _close(self) -> None:
        """Cancel the runs still queued (the nursery cancels the running ones)."""
        with trio.CancelScope(shield=True):
            for run_id in list(self._queue):
                item = self._queue.pop(run_id)
                try:
                    run = await self.manager.cancel_run(run_id, reason="server closed")
                except AsmError as exc:
                    item.error = exc
                    run = None
                self._finish(item, run)


async def resolve_session(
    manager: SessionManager,
    session: str | Session | None,
    *,
    provider: str | None,
    agent_id: str | None,
    metadata: Mapping[str, Any] | None,
) -> str:
    """The id of the active session a server's runs go to: ``session`` (activated if
    pending or paused; ``session_not_active`` if it has ended), or a new one started
    with ``agent_id``, ``provider`` and ``metadata``. Server backends share it."""
    if session is None:
        created = await manager.start_session(agent_id=agent_id, provider=provider, metadata=metadata)
        await manager.activate_session(created.id)
        return created.id
    session_id = session.id if isinstance(session, Session) else session
    current = await manager.get_session(session_id)
    if current.status in (SessionStatus.PENDING, SessionStatus.PAUSED):
        await manager.activate_session(session_id)
    elif current.status is not SessionStatus.ACTIVE:
        raise AsmError(
            "session_not_active",
            f"session {session_id} is {current.status.value}; a server needs a pending, active or paused session",
            details={"session_id": session_id, "status": current.status.value},
        )
    return session_id


#: The entry-point group of server backends: ``name = "module:open_session_server"``.
SERVER_BACKENDS = "asm.server_backends"


@functools.cache
def _server_backends() -> dict[str, EntryPoint]:
    """The installed server backends by name (entry points are read once: scanning them costs
    more than opening a server, and an application may open one per session)."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=SERVER_BACKENDS)}


def server_backend(name: str) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """The ``open_session_server`` of the server backend ``name`` (``[server] backend``),
    or ``invalid_config`` naming the installed ones."""
    found = _server_backends()
    if name not in found:
        installed = ", ".join(["local", *sorted(found)])
        raise AsmError(
            "invalid_config",
            f"[server] backend = {name!r}: no such server backend is installed (installed: {installed}); "
            "install its plugin (asm-celery for celery) or remove the key",
            details={"key": "server.backend", "installed": ["local", *sorted(found)]},
        )
    opener: Callable[..., AbstractAsyncContextManager[Any]] = found[name].load()
    return opener


@contextlib.asynccontextmanager
async def open_session_server(
    target: Runtime | SessionManager | SessionStore,
    provider: Provider | str | None = None,
    *,
    session: str | Session | None = None,
    agent_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_concurrent_runs: int = 1,
    max_queued_runs: int = 100,
    limiter: ConcurrencyLimiter | None = None,
    run_timeout: float | None = None,
    on_event: EventCallback | None = None,
) -> AsyncIterator[SessionServer]:
    """Serve one session's runs until the block ends.

    ``target`` is a :class:`~asm.runtime.Runtime`, a
    :class:`~asm.manager.SessionManager`, or a store (then ``provider``, a
    provider object, is required). ``session`` is an existing session id
    (activated if pending or paused); by default a new session is created
    and activated. ``limiter`` shares session and run slots with other
    servers (a runtime's servers share its ``limiter``, from the config keys
    ``max_parallel_sessions`` / ``max_parallel_runs``). Leaving the block cancels the runs still queued or running; call
    :meth:`SessionServer.drain` first to let them finish.

    With a runtime whose config says ``[server] backend = "celery"`` (or another
    installed server backend), the runs go to that backend (asm-celery: ``asm
    worker`` processes on any machine) behind the same API.
    """
    backend = target.config.server.get("backend", "local") if isinstance(target, Runtime) else "local"
    if backend != "local":
        opened = server_backend(backend)(
            target,
            provider,
            session=session,
            agent_id=agent_id,
            metadata=metadata,
            max_concurrent_runs=max_concurrent_runs,
            max_queued_runs=max_queued_runs,
            limiter=limiter,
            run_timeout=run_timeout,
            on_event=on_event,
        )
        async with opened as remote:
            yield remote
        return
    _positive("max_concurrent_runs", max_concurrent_runs, 1)
    _positive("max_queued_runs", max_queued_runs, 0)
    if isinstance(target, Runtime):
        manager = target.manager
        provider = provider if provider is not None else target.config.provider
        limiter = limiter if limiter is not None else target.limiter
    elif isinstance(target, SessionManager):
        manager = target
    else:
        if not isinstance(provider, Provider):
            raise AsmError(
                "validation_error",
                "open_session_server(store, provider) needs a provider object; pass a runtime or a manager "
                "to resolve providers by name",
            )
        manager = SessionManager(target, provider=provider)
    if provider is None and manager.provider is not None:
        provider = manager.provider
    provider_name = provider if isinstance(provider, str) or provider is None else provider.name
    slot = limiter.session_slot(object()) if limiter is not None else contextlib.nullcontext()
    async with slot:
        session_id = await resolve_session(
            manager, session, provider=provider_name, agent_id=agent_id, metadata=metadata
        )
        server = SessionServer(
            manager,
            session_id,
            provider=provider,
            max_concurrent_runs=max_concurrent_runs,
            max_queued_runs=max_queued_runs,
            limiter=limiter,
            run_timeout=run_timeout,
            on_event=on_event,
        )
        try:
            with single_errors():
                async with trio.open_nursery() as nursery:
                    server._nursery = nursery
                    nursery.start_soon(server._dispatch)
                    try:
                        yield server
                    finally:
                        server._closed = True
                        nursery.cancel_scope.cancel()
        finally:
            await server._close()
