"""``asm_web.Client``: the ``/v1`` API from Python, on httpx2, under trio.

::

    async with Client("http://127.0.0.1:8765", token=token) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "hello")
        async with client.follow(session.id, after=0) as events:
            async for event in events:          # reconnects with Last-Event-ID
                if event.run_id == run.id and event.type in RUN_END_TYPES:
                    break
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import attrs
import httpx2
import trio

from asm.errors import AsmError
from asm.events import Event, EventType
from asm.model import Page, Run, Session
from asm.serde import event_from_dict, structure
from asm.sse import SSEDecoder

__all__ = ["Client", "Follow", "SessionPage"]


@attrs.frozen
class SessionPage:
    """A page of sessions, newest first; ``next_cursor`` reads the next page (``None``: last)."""

    sessions: tuple[Session, ...]
    next_cursor: str | None


def _error_of(response: httpx2.Response) -> AsmError:
    """The server's error shape as the :class:`AsmError` it describes."""
    try:
        body = response.json()["error"]
        return AsmError(
            str(body["code"]),
            str(body["message"]),
            retryable=bool(body.get("retryable", False)),
            details={**dict(body.get("details") or {}), "status": response.status_code},
        )
    except Exception:  # noqa: BLE001 - not asm's error shape (a proxy's page, say)
        code = "storage_connection_failed" if response.status_code >= 500 else "invalid_input"
        return AsmError(
            code,
            f"the server answered {response.status_code} without an asm error body",
            details={"status": response.status_code},
        )


def _params(**values: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, list | tuple | frozenset | set):
            value = ",".join(str(getattr(v, "value", v)) for v in value)
        params[key] = getattr(value, "value", value)
    return params


class Client:
    """The asm HTTP API (``asm serve``) from Python. Every method raises the
    server's error as the :class:`AsmError` it describes (same code, message,
    ``retryable``; ``details["status"]`` is the HTTP status)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx2.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport, trust_env=False
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, json_body: Any = None, **params: Any) -> Any:
        try:
            response = await self._http.request(
                method, path, json=json_body if method == "POST" else None, params=_params(**params) or None
            )
        except httpx2.TransportError as exc:
            raise AsmError(
                "storage_connection_failed",
                f"cannot reach {self.base_url}: {exc!r}; is `asm serve` running there?",
                details={"url": self.base_url},
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response.json()

    # -- health ---------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``GET /v1/health``."""
        result: dict[str, Any] = await self._call("GET", "/v1/health")
        return result

    async def ready(self) -> bool:
        """Whether the server's store answers (``GET /v1/ready``)."""
        try:
            await self._call("GET", "/v1/ready")
        except AsmError as exc:
            if exc.details.get("status") == 503:
                return False
            raise
        return True

    # -- sessions -------------------------------------------------------------

    async def list_sessions(
        self,
        *,
        status: str | None = None,
        provider: str | None = None,
        agent_id: str | None = None,
        created_after: Any = None,
        created_before: Any = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SessionPage:
        """A page of sessions, newest first (``cursor``: the previous page's ``next_cursor``)."""
        body = await self._call(
            "GET",
            "/v1/sessions",
            status=status,
            provider=provider,
            agent_id=agent_id,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        )
        return SessionPage(tuple(structure(s, Session) for s in body["sessions"]), body["next_cursor"])

    async def create_session(
        self,
        *,
        agent_id: str | None = None,
        provider: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
    ) -> Session:
        """A new pending session (its first run activates it)."""
        body = {"agent_id": agent_id, "provider": provider, "metadata": dict(metadata or {}), "tags": list(tags)}
        return structure(await self._call("POST", "/v1/sessions", json_body=body), Session)

    async def get_session(self, session_id: str) -> Session:
        """A session; ``session_not_found`` for an unknown id."""
        return structure(await self._call("GET", f"/v1/sessions/{session_id}"), Session)

    async def complete_session(self, session_id: str) -> Session:
        """End a session successfully."""
        return structure(await self._call("POST", f"/v1/sessions/{session_id}/complete", json_body={}), Session)

    async def cancel_session(self, session_id: str, *, reason: str | None = None) -> Session:
        """Cancel a session and its queued and running runs."""
        body = {"reason": reason}
        return structure(await self._call("POST", f"/v1/sessions/{session_id}/cancel", json_body=body), Session)

    async def fork_session(self, session_id: str, *, at_seq: int | None = None) -> Session:
        """A new session with the history of ``session_id`` up to ``at_seq`` (default: all)."""
        body = {"at_seq": at_seq}
        return structure(await self._call("POST", f"/v1/sessions/{session_id}/fork", json_body=body), Session)

    # -- runs -----------------------------------------------------------------

    async def submit(
        self,
        session_id: str,
        input: str | list[dict[str, str]],
        *,
        provider: str | None = None,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Run:
        """Queue a run on the session (through the server's SessionServer); the run as queued."""
        body = {
            "input": input,
            "provider": provider,
            "options": dict(options or {}),
            "metadata": dict(metadata or {}),
            "timeout": timeout,
        }
        return structure(await self._call("POST", f"/v1/sessions/{session_id}/runs", json_body=body), Run)

    async def list_runs(self, session_id: str) -> list[Run]:
        """A session's runs, oldest first."""
        body = await self._call("GET", f"/v1/sessions/{session_id}/runs")
        return [structure(r, Run) for r in body["runs"]]

    async def get_run(self, run_id: str) -> Run:
        """A run; ``run_not_found`` for an unknown id."""
        return structure(await self._call("GET", f"/v1/runs/{run_id}"), Run)

    async def cancel_run(self, run_id: str, *, reason: str | None = None) -> Run:
        """Cancel a queued or running run; the run once it has ended."""
        return structure(await self._call("POST", f"/v1/runs/{run_id}/cancel", json_body={"reason": reason}), Run)

    async def wait_run(self, run_id: str, *, timeout: float | None = None) -> Run:
        """The run once it has ended, or as it is after ``timeout`` seconds (at
        most the server's ``max_wait_seconds``); check ``run.status``."""
        return structure(await self._call("GET", f"/v1/runs/{run_id}/wait", timeout=timeout), Run)

    async def wait_until_done(self, run_id: str) -> Run:
        """Long-poll until the run has ended, however long that takes."""
        while True:
            run = await self.wait_run(run_id)
            if run.status.is_terminal:
                return run

    # -- events ---------------------------------------------------------------

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
        """A page of stored events, oldest first (``page.cursor`` is the next ``after``)."""
        body = await self._call(
            "GET",
            f"/v1/sessions/{session_id}/events",
            after=after,
            before=before,
            limit=limit,
            types=list(types) if types is not None else None,
            run_id=run_id,
        )
        return Page(tuple(event_from_dict(e) for e in body["events"]), body["cursor"], body["has_more"])

    def follow(
        self,
        session_id: str,
        *,
        after: int = 0,
        types: Iterable[EventType | str] | None = None,
        run_id: str | None = None,
        reconnect_delay: float = 0.2,
        max_reconnect_delay: float = 5.0,
        idle_timeout: float = 60.0,
    ) -> Follow:
        """The session's events after ``after``, then live, over SSE: ``async with
        client.follow(id) as events: async for event in events``. A dropped
        connection (or a restarted server) is reopened with ``Last-Event-ID``,
        so no event is missed or seen twice; ``events.cursor`` is the last seq seen."""
        return Follow(
            self,
            session_id,
            after=after,
            types=list(types) if types is not None else None,
            run_id=run_id,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            idle_timeout=idle_timeout,
        )

    async def usage(self, **filters: Any) -> dict[str, Any]:
        """Token and cost totals (``group_by``, ``agent_id``, ``provider``, ``model``,
        ``session_id``, ``since``, ``until``)."""
        result: dict[str, Any] = await self._call("GET", "/v1/usage", **filters)
        return result


class Follow:
    """The iterator :meth:`Client.follow` returns. Use it in ``async with`` so the
    connection closes when the block ends, whether the loop finished or not."""

    def __init__(
        self,
        client: Client,
        session_id: str,
        *,
        after: int,
        types: list[EventType | str] | None,
        run_id: str | None,
        reconnect_delay: float,
        max_reconnect_delay: float,
        idle_timeout: float,
    ) -> None:
        self._client = client
        self.session_id = session_id
        #: the seq of the last event seen (what a reconnect sends as Last-Event-ID)
        self.cursor = after
        #: how many times the stream was reopened after a drop
        self.reconnects = 0
        self._params = _params(types=types, run_id=run_id)
        self._delay = reconnect_delay
        self._max_delay = max_reconnect_delay
        self._idle = idle_timeout
        self._response: httpx2.Response | None = None
        self._chunks: Any = None
        self._decoder = SSEDecoder()
        self._ready: deque[Event] = deque()
        self._failures = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while not self._ready:
            if self._response is None:
                await self._connect()
                continue
            try:
                with trio.fail_after(self._idle):
                    chunk = await self._chunks.__anext__()
            except (StopAsyncIteration, httpx2.TransportError, trio.TooSlowError):
                await self._drop()
                continue
            self._failures = 0
            for _name, data in self._decoder.feed(chunk):
                event = event_from_dict(json.loads(data))
                if event.seq is not None and event.seq > self.cursor:
                    self.cursor = event.seq
                    self._ready.append(event)
        return self._ready.popleft()

    async def _connect(self) -> None:
        http = self._client._http
        request = http.build_request(
            "GET",
            f"/v1/sessions/{self.session_id}/events/stream",
            params=self._params,
            headers={"Last-Event-ID": str(self.cursor), "Accept": "text/event-stream"},
            timeout=httpx2.Timeout(10.0, read=None),
        )
        try:
            response = await http.send(request, stream=True)
        except httpx2.TransportError:
            await self._drop()
            return
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            if response.status_code >= 500 or response.status_code == 429:
                await self._drop()
                return
            raise _error_of(response)
        self._response = response
        self._chunks = response.aiter_raw()
        self._decoder = SSEDecoder()

    async def _drop(self) -> None:
        """Close the connection and wait before the next attempt (backing off while they fail)."""
        await self._close_response()
        self.reconnects += 1
        self._failures += 1
        await trio.sleep(min(self._max_delay, self._delay * 2 ** min(self._failures - 1, 10)))

    async def _close_response(self) -> None:
        response, chunks = self._response, self._chunks
        self._response = self._chunks = None
        with trio.CancelScope(shield=True):
            # The connection first, then the body iterator run out (it ends at once): an
            # httpx2 generator abandoned midway would be finalized later, in a system task.
            if response is not None:
                await response.aclose()
            if chunks is not None:
                with contextlib.suppress(Exception):
                    async for _ in chunks:
                        pass
                await chunks.aclose()

    async def aclose(self) -> None:
        """Close the connection (the iterator ends)."""
        await self._close_response()
