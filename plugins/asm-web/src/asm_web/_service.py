"""What the HTTP layer calls: one runtime, a :class:`~asm.server.SessionServer` per
session that has runs submitted over HTTP, one live feed per session followed over SSE,
and the feed of session changes for dashboards."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import trio

from asm.errors import AsmError
from asm.events import LIFECYCLE_TYPES, Event, EventType
from asm.model import Run, Session
from asm.pubsub import InProcessBroker
from asm.runtime import Runtime
from asm.server import SessionServer, open_session_server
from asm_web._feed import Feeds
from asm_web._options import WebOptions

__all__ = ["WebService", "open_web_service"]

_log = logging.getLogger("asm_web")

#: The topic of the session-list feed on the service's own broker.
SESSIONS_TOPIC = "asm.web.sessions"
#: Event types that change what a session list shows (status, runs going on).
_LISTED: frozenset[EventType] = frozenset(LIFECYCLE_TYPES)


@attrs.define(eq=False)
class _Held:
    server: SessionServer
    release: trio.Event = attrs.field(factory=trio.Event)
    #: runs submitted through it that have not ended yet
    in_flight: int = 0


class WebService:
    """The API's operations on a runtime. Made by :func:`open_web_service`."""

    def __init__(self, runtime: Runtime, options: WebOptions, nursery: trio.Nursery) -> None:
        self.runtime = runtime
        self.options = options
        self._nursery = nursery
        self._held: dict[str, _Held] = {}
        self._opening = trio.Lock()
        #: session changes (one lifecycle event each) for the session-list stream
        self.changes = InProcessBroker(buffer=10_000)
        #: one live feed per session followed over SSE, shared by all its clients
        self.feeds = Feeds(
            runtime,
            nursery,
            follow=options.follow,
            batch_seconds=options.sse_batch_seconds,
            heartbeat_seconds=options.heartbeat_seconds,
            window=options.sse_window_events,
        )
        runtime.manager.add_event_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.data.type in _LISTED:
            self.changes.publish_nowait(SESSIONS_TOPIC, event)

    # -- sessions ------------------------------------------------------------

    async def create_session(
        self,
        *,
        agent_id: str | None,
        provider: str | None,
        metadata: Mapping[str, Any] | None,
        tags: tuple[str, ...],
    ) -> Session:
        """A new ``pending`` session (its first run activates it)."""
        if provider is not None:
            self.runtime.provider(provider)  # an unknown name is provider_not_found now, not at the first run
        return await self.runtime.manager.start_session(
            agent_id=agent_id, provider=provider or self.runtime.config.provider, metadata=metadata, tags=tags
        )

    async def complete_session(self, session_id: str) -> Session:
        """``session_completed``, once no run of it is queued or running here."""
        held = self._held.get(session_id)
        if held is not None:
            status = held.server.status()
            if status.queued or status.running:
                raise AsmError(
                    "invalid_transition",
                    f"session {session_id} has {len(status.queued) + len(status.running)} run(s) queued or "
                    "running; wait for them or cancel them, then complete it",
                    details={"kind": "session", "session_id": session_id},
                )
        session = await self.runtime.manager.complete_session(session_id)
        self._release(session_id)
        return session

    async def cancel_session(self, session_id: str, *, reason: str | None) -> Session:
        """``session_cancelled``: its queued and running runs are cancelled first."""
        held = self._held.get(session_id)
        if held is not None:
            status = held.server.status()
            for run_id in (*status.queued, *status.running):
                await held.server.cancel(run_id, reason=reason or "session cancelled")
        session = await self.runtime.manager.cancel_session(session_id, reason=reason)
        self._release(session_id)
        return session

    async def fork_session(self, session_id: str, *, at_seq: int | None) -> Session:
        """A new pending session with the history of ``session_id`` up to ``at_seq``
        (default: everything stored now)."""
        store = self.runtime.store
        if at_seq is None:
            await store.get_session(session_id)  # session_not_found before "empty"
            at_seq = await store.latest_seq(session_id)
        return await store.fork_session(session_id, at_seq=at_seq)

    # -- runs ----------------------------------------------------------------

    async def submit(
        self,
        session_id: str,
        input: object,
        *,
        provider: str | None,
        options: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> Run:
        """Queue a run on the session's server (opened on first use): its limits,
        queue and policies apply. ``queue_full`` when the queue is full."""
        if provider is not None:
            self.runtime.provider(provider)
        held = await self._server(session_id)
        held.in_flight += 1  # no checkpoint since _server: the server cannot be released in between
        try:
            run_id = await held.server.submit(
                input, provider=provider, options=options, metadata=metadata, timeout=timeout
            )
        except BaseException:
            self._done_with(session_id, held)
            raise
        self._nursery.start_soon(self._watch, session_id, held, run_id)
        return await self.runtime.store.get_run(run_id)

    async def _watch(self, session_id: str, held: _Held, run_id: str) -> None:
        """Once the run has ended, close the session's server if nothing else is in flight
        (an idle server would hold one of the runtime's ``max_parallel_sessions`` slots)."""
        with contextlib.suppress(AsmError):
            await held.server.wait(run_id)
        self._done_with(session_id, held)

    def _done_with(self, session_id: str, held: _Held) -> None:
        held.in_flight -= 1
        if held.in_flight == 0 and self._held.get(session_id) is held:
            self._release(session_id)

    async def cancel_run(self, run_id: str, *, reason: str | None) -> Run:
        """Cancel a queued or running run; return it once it has ended (an ended
        run is returned as it is)."""
        run = await self.runtime.store.get_run(run_id)
        held = self._held.get(run.session_id)
        if held is not None:
            with contextlib.suppress(AsmError):
                return await held.server.cancel(run_id, reason=reason)
        return await self.runtime.manager.cancel_run(run_id, reason=reason)

    async def wait_run(self, run_id: str, *, timeout: float) -> Run:
        """The run once it has ended, or as it is when ``timeout`` seconds pass
        first. Reads the store, so it sees runs of any process sharing it."""
        store = self.runtime.store
        run = await store.get_run(run_id)
        deadline = trio.current_time() + timeout
        while not run.status.is_terminal:
            left = deadline - trio.current_time()
            if left <= 0:
                break
            # The seq first, then the run: a run that ends in between has stored its end after seq.
            seq = await store.latest_seq(run.session_id)
            run = await store.get_run(run_id)
            if run.status.is_terminal:
                break
            await store.wait_for_events(run.session_id, after=seq, timeout=left, limit=1)
            run = await store.get_run(run_id)
        return run

    # -- the servers ---------------------------------------------------------

    async def _server(self, session_id: str) -> _Held:
        held = self._held.get(session_id)
        if held is not None:
            return held
        async with self._opening:
            held = self._held.get(session_id)
            if held is None:
                held = await self._nursery.start(self._hold, session_id)
            return held

    async def _hold(self, session_id: str, *, task_status: trio.TaskStatus[_Held]) -> None:
        opts = self.options
        held: _Held | None = None
        try:
            async with open_session_server(
                self.runtime,
                session=session_id,
                max_concurrent_runs=opts.max_concurrent_runs,
                max_queued_runs=opts.max_queued_runs,
            ) as server:
                held = self._held[session_id] = _Held(server)
                task_status.started(held)
                await held.release.wait()
                # Completed or cancelled: nothing is left to run; leaving cancels stragglers.
        except AsmError as exc:
            if held is None:
                raise  # opening failed: the caller of start() gets it
            _log.warning("the server of session %s closed with %s: %s", session_id, exc.code, exc.message)
        finally:
            if held is not None and self._held.get(session_id) is held:
                del self._held[session_id]

    def _release(self, session_id: str) -> None:
        held = self._held.pop(session_id, None)
        if held is not None:
            held.release.set()

    def serving(self) -> list[str]:
        """Ids of the sessions whose server is open in this process."""
        return list(self._held)

    async def aclose(self) -> None:
        """Close every session's server (their runs still going on are cancelled)."""
        for session_id in list(self._held):
            self._release(session_id)


@contextlib.asynccontextmanager
async def open_web_service(runtime: Runtime, options: WebOptions | None = None) -> AsyncIterator[WebService]:
    """The service of an open runtime until the block ends; leaving it cancels the
    runs still queued or running through it (each recorded ``cancelled``)."""
    async with trio.open_nursery() as nursery:
        service = WebService(runtime, options or WebOptions(), nursery)
        try:
            yield service
        finally:
            runtime.manager.remove_event_listener(service._on_event)
            nursery.cancel_scope.cancel()


def clamp_timeout(value: float, limit: float) -> float:
    """``value`` seconds, at most ``limit``; NaN and negatives are refused."""
    if math.isnan(value) or value < 0:
        raise AsmError("validation_error", f"timeout={value!r} must be a number of seconds >= 0")
    return min(value, limit)
