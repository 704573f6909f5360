"""The ASGI application: the ``/v1`` REST API, Server-Sent Event streams and the viewer's files.

Every answer that is not a success is one JSON shape,
``{"error": {"code", "category", "message", "retryable", "details"}}``, with the
HTTP status of its code (:func:`asm_web._errors.status_of`).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Final

import attrs
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asm.errors import AsmError
from asm.events import Event, EventType
from asm.model import Page, Session
from asm.ports import Maintenance, QueryAPI, SessionStore
from asm.serde import converter as asm_converter
from asm.serde import describe_structure_error, event_to_dict, unstructure
from asm.states import SessionStatus
from asm.stores import MAX_SEQ, parse_event_types
from asm_web._errors import RETRY_AFTER_SECONDS, HttpError, error_body, status_of
from asm_web._feed import MAX_WRITE, Feeds, format_sse, json_bytes
from asm_web._openapi import openapi_document
from asm_web._service import SESSIONS_TOPIC, WebService, clamp_timeout

__all__ = ["create_app", "format_sse"]

_access = logging.getLogger("asm_web.access")
_log = logging.getLogger("asm_web")

#: Query parameter names that look like credentials: refused everywhere (URLs end up in logs).
_CREDENTIAL_PARAMS: Final = frozenset({"token", "access_token", "api_key", "apikey", "key", "bearer", "auth"})
#: Paths anyone may read, token or not.
_PUBLIC: Final = frozenset({"/v1/health", "/v1/ready", "/v1/openapi.json"})
#: The largest page of sessions or events one request returns.
MAX_PAGE: Final = 1000
DEFAULT_PAGE: Final = 50


# -- responses ---------------------------------------------------------------


_dumps = json_bytes


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, headers=headers, media_type="application/json")


def error_response(error: AsmError) -> Response:
    """The JSON error shape with the code's HTTP status (and ``Retry-After`` on a 429)."""
    status = status_of(error)
    headers = {}
    if status == 429:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="asm"'
    return _json(error_body(error), status, headers)


def _first_asm_error(group: BaseExceptionGroup[Any]) -> AsmError | None:
    for exc in group.exceptions:
        if isinstance(exc, AsmError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_asm_error(exc)
            if found is not None:
                return found
    return None


Endpoint = Callable[[Request], Awaitable[Response]]


def _endpoint(handler: Endpoint) -> Endpoint:
    """``handler`` answering every :class:`AsmError` (alone or in a group) with the error shape."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except AsmError as exc:
            return error_response(exc)
        except BaseExceptionGroup as group:
            found = _first_asm_error(group)
            if found is None:
                raise
            return error_response(found)

    return wrapped


# -- reading requests --------------------------------------------------------


Parser = Callable[[str, str], Any]


def _int(low: int, high: int) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            code = "invalid_cursor" if name in ("after", "before", "Last-Event-ID") else "validation_error"
            raise AsmError(code, f"{name}={raw[:40]!r} must be an integer from {low} to {high}")
        return value

    return parse


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise AsmError("validation_error", f"{name}={raw[:40]!r} must be a number of seconds >= 0")
    return value


def _printable(raw: str) -> bool:
    return raw.isprintable()


def _text(name: str, raw: str) -> str:
    if not raw or len(raw) > 200 or not _printable(raw):
        raise AsmError("validation_error", f"{name} must be 1 to 200 printable characters")
    return raw


def _path_id(request: Request, name: str) -> str:
    """A session or run id from the path; one no id can look like is a 404 at once."""
    value: str = request.path_params[name]
    if len(value) > 200 or not _printable(value):
        kind = name.removesuffix("_id")
        raise AsmError(f"{kind}_not_found", f"no {kind} {value[:40]!r}; check the id", details={name: value[:200]})
    return value


def _when(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise AsmError("validation_error", f"{name}={raw[:40]!r} is not an ISO 8601 timestamp") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _choice(*choices: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        if raw not in choices:
            raise AsmError("validation_error", f"{name}={raw[:40]!r} is not one of {', '.join(choices)}")
        return raw

    return parse


def _types(name: str, raw: str) -> list[str]:
    parts = [part for part in raw.split(",") if part]
    if not parts:
        raise AsmError("validation_error", f"{name} must name event types (comma-separated)")
    return parts


def _query(request: Request, allowed: Mapping[str, Parser], *, repeated: Iterable[str] = ()) -> dict[str, Any]:
    """The request's query parameters, each parsed; an unknown one, or one given twice, is a 400."""
    params = request.query_params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise AsmError(
            "validation_error",
            f"unknown query parameter(s) {', '.join(repr(u[:40]) for u in unknown)}; valid here: {valid}",
            details={"unknown": unknown},
        )
    parsed: dict[str, Any] = {}
    for name, parse in allowed.items():
        values = params.getlist(name)
        if not values:
            continue
        if len(values) > 1 and name not in repeated:
            raise AsmError("validation_error", f"query parameter {name!r} is given {len(values)} times; give it once")
        if name in repeated:
            parsed[name] = [item for value in values for item in parse(name, value)]
        else:
            parsed[name] = parse(name, values[0])
    return parsed


def _no_nan(constant: str) -> Any:
    raise AsmError("validation_error", f"the body holds {constant}, which is not JSON")


def _check_text(value: Any, where: str = "body") -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise AsmError("validation_error", f"{where} holds a lone surrogate, which is not text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}[{index}]")


async def _body(request: Request, cls: type[Any]) -> Any:
    """The JSON object body as ``cls`` (an empty body: every default)."""
    raw = await request.body()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw, parse_constant=_no_nan)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AsmError("validation_error", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AsmError("validation_error", f"the body must be a JSON object, not {type(data).__name__}")
    _check_text(data)
    try:
        return asm_converter.structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - every structuring failure is a bad body
        raise AsmError("validation_error", f"invalid body: {describe_structure_error(exc)}") from None


@attrs.frozen
class CreateSession:
    """``POST /v1/sessions``."""

    agent_id: str | None = None
    provider: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)


@attrs.frozen
class SubmitRun:
    """``POST /v1/sessions/{id}/runs``."""

    input: Any = None
    provider: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    timeout: float | None = None


@attrs.frozen
class Reason:
    """``POST .../cancel``."""

    reason: str | None = None


@attrs.frozen
class Fork:
    """``POST /v1/sessions/{id}/fork``."""

    at_seq: int | None = None


@attrs.frozen
class Empty:
    """A body that takes no fields."""


def _session_json(session: Session) -> dict[str, Any]:
    data: dict[str, Any] = unstructure(session)
    return data


def _page_json(page: Page) -> dict[str, Any]:
    return {"events": [event_to_dict(e) for e in page.events], "cursor": page.cursor, "has_more": page.has_more}


#: A place in the sessions list (newest first): the ``created_at`` and ``id`` of the last
#: session a page showed; the next page starts right after it.
Position = tuple[datetime, str]


def _encode_cursor(session: Session) -> str:
    data = {"t": session.created_at.isoformat(), "i": session.id}
    return base64.urlsafe_b64encode(_dumps(data)).decode().rstrip("=")


def _decode_cursor(name: str, raw: str) -> Position:
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        at, ident = datetime.fromisoformat(data["t"]), data["i"]
        if at.tzinfo is None or not isinstance(ident, str) or not 0 < len(ident) <= 200 or not _printable(ident):
            raise ValueError(data)
    except Exception:  # noqa: BLE001 - anything unreadable is a bad cursor
        raise AsmError(
            "invalid_cursor", f"{name}={raw[:40]!r} is not a cursor this API gave; pass next_cursor as it came"
        ) from None
    return at, ident


def _position(session: Session) -> Position:
    return session.created_at, session.id


async def _sessions_after(
    store: SessionStore, filters: dict[str, Any], limit: int, cursor: Position | None
) -> list[Session]:
    """Up to ``limit`` sessions matching ``filters`` (``search_sessions``'s), newest first,
    from just after ``cursor`` in that order (``created_at`` then ``id``, descending).

    A keyset page, not an offset: a query bounded by the cursor's ``created_at``, so a
    page deep in the list costs what the first one does, and sessions created meanwhile
    (at the top) neither shift a page nor repeat one. Sessions created in the same
    microsecond as the cursor's are told apart by id."""
    if not isinstance(store, QueryAPI):
        everything = await store.list_sessions(status=filters.get("status"), agent_id=filters.get("agent_id"))
        matching = [
            s
            for s in everything
            if ("provider" not in filters or s.provider == filters["provider"])
            and ("since" not in filters or s.created_at >= filters["since"])
            and ("until" not in filters or s.created_at < filters["until"])
            and (cursor is None or _position(s) < cursor)
        ]
        matching.sort(key=_position, reverse=True)
        return matching[:limit]
    if cursor is None:
        return await store.search_sessions(**filters, limit=limit, offset=0)
    # created_at <= the cursor's (the store's bound is exclusive; times are kept to the
    # microsecond), then past the cursor's own session and any of its microsecond with a
    # larger id: those come first in the store's order, usually just the one.
    bound = cursor[0] + timedelta(microseconds=1)
    query = {**filters, "until": min(filters.get("until", bound), bound)}
    found: list[Session] = []
    offset = 0
    while len(found) < limit:
        want = limit - len(found) + 1
        rows = await store.search_sessions(**query, limit=want, offset=offset)
        found += [s for s in rows if _position(s) < cursor]
        if len(rows) < want:
            break
        offset += len(rows)
    return found[:limit]


#: The sessions list's query parameters -> ``search_sessions``'s filters.
_SESSION_FILTERS: Final = {
    "status": "status",
    "agent_id": "agent_id",
    "provider": "provider",
    "created_after": "since",
    "created_before": "until",
}


# -- the API -----------------------------------------------------------------


class Api:
    """The endpoints, bound to a :class:`WebService`."""

    def __init__(self, service: WebService) -> None:
        self.service = service
        self.runtime = service.runtime
        self.store = service.runtime.store
        self.options = service.options

    # health --------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        _query(request, {})
        return _json({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        _query(request, {})
        problems: list[str] = []
        try:
            with trio.fail_after(5):
                if isinstance(self.store, Maintenance):
                    problems = list(await self.store.health_check())
                else:
                    await self.store.latest_seq("ses_readiness_probe")
        except trio.TooSlowError:
            problems = ["the store did not answer within 5s"]
        except AsmError as exc:
            problems = [f"{exc.code}: {exc.message}"]
        body = {"status": "ready" if not problems else "not_ready", "problems": problems}
        return _json(body, 200 if not problems else 503)

    async def openapi(self, request: Request) -> Response:
        _query(request, {})
        return _json(openapi_document(self.options))

    # sessions ------------------------------------------------------------

    async def list_sessions(self, request: Request) -> Response:
        q = _query(
            request,
            {
                "status": _choice(*(s.value for s in SessionStatus)),
                "provider": _text,
                "agent_id": _text,
                "created_after": _when,
                "created_before": _when,
                "limit": _int(1, MAX_PAGE),
                "cursor": _decode_cursor,
            },
        )
        limit = q.get("limit", DEFAULT_PAGE)
        filters: dict[str, Any] = {}
        for param, name in _SESSION_FILTERS.items():
            if param in q:
                filters[name] = SessionStatus(q[param]) if name == "status" else q[param]
        found = await _sessions_after(self.store, filters, limit + 1, q.get("cursor"))
        page = found[:limit]
        return _json(
            {
                "sessions": [_session_json(s) for s in page],
                "next_cursor": _encode_cursor(page[-1]) if len(found) > limit else None,
            }
        )

    async def create_session(self, request: Request) -> Response:
        _query(request, {})
        body: CreateSession = await _body(request, CreateSession)
        session = await self.service.create_session(
            agent_id=body.agent_id, provider=body.provider, metadata=body.metadata, tags=tuple(body.tags)
        )
        return _json(_session_json(session), 201, {"Location": f"/v1/sessions/{session.id}"})

    async def get_session(self, request: Request) -> Response:
        _query(request, {})
        return _json(_session_json(await self.store.get_session(_path_id(request, "session_id"))))

    async def complete_session(self, request: Request) -> Response:
        _query(request, {})
        await _body(request, Empty)
        return _json(_session_json(await self.service.complete_session(_path_id(request, "session_id"))))

    async def cancel_session(self, request: Request) -> Response:
        _query(request, {})
        body: Reason = await _body(request, Reason)
        session = await self.service.cancel_session(_path_id(request, "session_id"), reason=body.reason)
        return _json(_session_json(session))

    async def fork_session(self, request: Request) -> Response:
        _query(request, {})
        body: Fork = await _body(request, Fork)
        if body.at_seq is not None and not 1 <= body.at_seq <= MAX_SEQ:
            raise AsmError("validation_error", f"at_seq={body.at_seq} must be a seq from 1 to 2**63-1")
        fork = await self.service.fork_session(_path_id(request, "session_id"), at_seq=body.at_seq)
        return _json(_session_json(fork), 201, {"Location": f"/v1/sessions/{fork.id}"})

    # runs ----------------------------------------------------------------

    async def list_runs(self, request: Request) -> Response:
        _query(request, {})
        session_id = _path_id(request, "session_id")
        await self.store.get_session(session_id)
        runs = await self.store.list_runs(session_id)
        return _json({"runs": [unstructure(r) for r in runs]})

    async def submit_run(self, request: Request) -> Response:
        _query(request, {})
        body: SubmitRun = await _body(request, SubmitRun)
        if body.input is None:
            raise AsmError("validation_error", "the body needs input: a prompt string or a list of messages")
        if body.timeout is not None and not (math.isfinite(body.timeout) and body.timeout > 0):
            raise AsmError("validation_error", f"timeout={body.timeout!r} must be a number of seconds > 0")
        run = await self.service.submit(
            _path_id(request, "session_id"),
            body.input,
            provider=body.provider,
            options=body.options,
            metadata=body.metadata,
            timeout=body.timeout,
        )
        return _json(unstructure(run), 202, {"Location": f"/v1/runs/{run.id}"})

    async def get_run(self, request: Request) -> Response:
        _query(request, {})
        return _json(unstructure(await self.store.get_run(_path_id(request, "run_id"))))

    async def cancel_run(self, request: Request) -> Response:
        _query(request, {})
        body: Reason = await _body(request, Reason)
        run = await self.service.cancel_run(_path_id(request, "run_id"), reason=body.reason)
        return _json(unstructure(run))

    async def wait_run(self, request: Request) -> Response:
        q = _query(request, {"timeout": _float})
        timeout = clamp_timeout(q.get("timeout", self.options.max_wait_seconds), self.options.max_wait_seconds)
        run = await self.service.wait_run(_path_id(request, "run_id"), timeout=timeout)
        return _json(unstructure(run))

    # events --------------------------------------------------------------

    async def read_events(self, request: Request) -> Response:
        q = _query(
            request,
            {
                "after": _int(0, MAX_SEQ),
                "before": _int(1, MAX_SEQ),
                "limit": _int(1, MAX_PAGE),
                "types": _types,
                "run_id": _text,
            },
            repeated=("types",),
        )
        session_id = _path_id(request, "session_id")
        await self.store.get_session(session_id)
        page = await self.store.read_events(
            session_id,
            after=q.get("after", 0),
            before=q.get("before"),
            limit=q.get("limit", 100),
            types=q.get("types"),
            run_id=q.get("run_id"),
        )
        return _json(_page_json(page))

    async def stream_events(self, request: Request) -> Response:
        q = _query(request, {"after": _int(0, MAX_SEQ), "types": _types, "run_id": _text}, repeated=("types",))
        after = q.get("after", 0)
        last = request.headers.get("last-event-id")
        if last is not None:
            after = _int(0, MAX_SEQ)("Last-Event-ID", last.strip())
        session_id = _path_id(request, "session_id")
        await self.store.get_session(session_id)
        types = q.get("types")  # an unknown type is a 400 now (parse_event_types), not a broken stream

        return EventStream(
            self.service.feeds,
            self.store,
            session_id,
            after=after,
            types=parse_event_types(types),
            run_id=q.get("run_id"),
        )

    async def stream_sessions(self, request: Request) -> Response:
        _query(request, {})
        return SessionStream(self.service, self.options.heartbeat_seconds)

    # usage ---------------------------------------------------------------

    async def usage(self, request: Request) -> Response:
        q = _query(
            request,
            {
                "group_by": _choice("session", "agent", "provider", "model"),
                "agent_id": _text,
                "provider": _text,
                "model": _text,
                "session_id": _text,
                "since": _when,
                "until": _when,
            },
        )
        if not isinstance(self.store, QueryAPI):
            raise AsmError(
                "dependency_not_available",
                f"the store ({type(self.store).__name__}) answers no usage queries; use a store with a "
                "QueryAPI (sqlite or postgresql from asm-sqlalchemy)",
            )
        summary = await self.store.usage_summary(**q)
        return Response(_dumps(summary), media_type="application/json")

    # the viewer ----------------------------------------------------------

    async def viewer(self, request: Request) -> Response:
        _query(request, {"session": _text})
        return _static("index.html")

    async def static(self, request: Request) -> Response:
        _query(request, {})
        return _static(request.path_params["path"])


_STATIC_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _static(path: str) -> Response:
    """A file of the package's ``static`` folder; a path that leaves it, or names no
    file there, is a 404 (never a file elsewhere)."""
    parts = PurePosixPath(path).parts
    suffix = PurePosixPath(path).suffix
    if not parts or any(p in ("..", ".") or p.startswith(".") or "\\" in p for p in parts) or path.startswith("/"):
        raise AsmError("not_found", f"no viewer file {path[:80]!r}", details={"path": path[:200]})
    node = resources.files("asm_web").joinpath("static", *parts)
    if suffix not in _STATIC_TYPES or not node.is_file():
        raise AsmError("not_found", f"no viewer file {path[:80]!r}", details={"path": path[:200]})
    return Response(
        node.read_bytes(),
        media_type=_STATIC_TYPES[suffix],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# -- Server-Sent Events ------------------------------------------------------


#: Formatted messages of events read from the store: clients catching up on the same
#: events (many of them joining a running session at once) format each one once.
_FORMATTED: OrderedDict[tuple[str, int], bytes] = OrderedDict()
_FORMATTED_KEPT: Final = 20_000


def _formatted(event: Event) -> bytes:
    key = (event.id, event.seq or 0)
    message = _FORMATTED.get(key)
    if message is None:
        message = _FORMATTED[key] = format_sse(event)
        if len(_FORMATTED) > _FORMATTED_KEPT:
            _FORMATTED.popitem(last=False)
    return message


_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class _Streaming(Response):
    """A response that writes until the client leaves (or the server stops)."""

    def __init__(self) -> None:
        super().__init__(media_type="text/event-stream")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            async def write(chunk: bytes) -> None:
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except Exception:  # noqa: BLE001 - the client is gone: stop writing
                    nursery.cancel_scope.cancel()
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(watch)
            await write(b"retry: 1000\n\n")
            await self.produce(write)

    async def produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        raise NotImplementedError


class EventStream(_Streaming):
    """``text/event-stream`` of a session's events after a cursor: from the session's
    shared feed (:mod:`asm_web._feed`) while the cursor is in its window, else from the
    store, page by page, until it is. The client never holds the feed back: it only
    keeps its cursor, and writes at most one chunk at a time."""

    def __init__(
        self,
        feeds: Feeds,
        store: SessionStore,
        session_id: str,
        *,
        after: int,
        types: frozenset[EventType] | None,
        run_id: str | None,
    ) -> None:
        super().__init__()
        self._feeds = feeds
        self._store = store
        self._session_id = session_id
        self._after = after
        self._types = types
        self._run_id = run_id

    def _match(self, event: Event) -> bool:
        return (self._types is None or event.data.type in self._types) and (
            self._run_id is None or event.run_id == self._run_id
        )

    async def produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        filtered = self._types is not None or self._run_id is not None
        async with self._feeds.join(self._session_id) as feed:
            cursor = self._after
            # A heartbeat once nothing was written for heartbeat_seconds (a filtered stream of a
            # busy session too: its feed's batches wake it, but may hold nothing for it); the
            # feed's ticks wake a quiet stream to see to it, and are the clock it goes by.
            written = feed.ticks
            while not feed.closed:
                if cursor >= feed.head:
                    if feed.owes_heartbeat(written):
                        await write(b": heartbeat\n\n")
                        written = feed.ticks
                    await feed.wait(cursor)
                    continue
                if feed.holds(cursor):
                    data, cursor = feed.take(cursor, self._match if filtered else None)
                else:
                    # Behind the window (a slow reader, an old Last-Event-ID): the store has it.
                    self._feeds.store_reads += 1
                    page = await self._store.read_events(
                        self._session_id, after=cursor, limit=MAX_WRITE, types=self._types, run_id=self._run_id
                    )
                    data = b"".join(_formatted(e) for e in page.events)
                    # (an empty page below the window: those events are gone, e.g. compacted)
                    cursor = page.cursor if page.cursor > cursor else feed.first - 1
                if data:
                    await write(data)
                    written = feed.ticks


class SessionStream(_Streaming):
    """``text/event-stream`` of session changes: each lifecycle event as ``event: session``
    with the session as it is after it (live only; list first, then follow)."""

    def __init__(self, service: WebService, heartbeat: float) -> None:
        super().__init__()
        self._service = service
        self._heartbeat = heartbeat

    async def produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        store = self._service.runtime.store
        async with self._service.changes.subscribe(SESSIONS_TOPIC) as changes:
            iterator = changes.__aiter__()
            while True:
                with trio.move_on_after(self._heartbeat) as idle:
                    try:
                        change = await iterator.__anext__()
                    except AsmError:  # fell too far behind: end; the client lists again and follows
                        return
                if idle.cancelled_caught:
                    await write(b": heartbeat\n\n")
                    continue
                try:
                    session = await store.get_session(change.session_id)
                except AsmError:
                    continue  # deleted meanwhile
                data = {
                    "session": _session_json(session),
                    "event": change.data.type.value,
                    "run_id": change.run_id,
                    "seq": change.seq,
                }
                await write(b"event: session\ndata: %s\n\n" % _dumps(data))


# -- middleware --------------------------------------------------------------


async def _send_error(send: Send, error: AsmError) -> None:
    response = error_response(error)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class Guard:
    """Credentials in the URL, bearer tokens and the body size cap, before any endpoint."""

    def __init__(self, app: ASGIApp, service: WebService) -> None:
        self.app = app
        self.options = service.options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self._refusal(scope)
        if error is not None:
            await _send_error(send, error)
            return
        limit = self.options.max_body_bytes
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HttpError(
                        "payload_too_large",
                        f"the request body is larger than {limit} bytes ([web] max_body_bytes)",
                        details={"max_body_bytes": limit},
                    )
            return message

        await self.app(scope, capped, send)

    def _refusal(self, scope: Scope) -> AsmError | None:
        from urllib.parse import parse_qsl

        query = scope.get("query_string", b"").decode("latin-1")
        names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
        if names & _CREDENTIAL_PARAMS:
            return AsmError(
                "invalid_input",
                "credentials are never taken from the URL (URLs end up in logs and histories); "
                "send the token as an Authorization: Bearer header",
                details={"parameters": sorted(names & _CREDENTIAL_PARAMS)},
            )
        headers = {k.lower(): v for k, v in scope["headers"]}
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.options.max_body_bytes:
            return HttpError(
                "payload_too_large",
                f"the request body is larger than {self.options.max_body_bytes} bytes ([web] max_body_bytes)",
                details={"max_body_bytes": self.options.max_body_bytes},
            )
        path: str = scope["path"]
        if not self.options.auth_required or not path.startswith("/v1/") or path in _PUBLIC:
            return None
        if scope["method"] == "OPTIONS":
            return None
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return HttpError("unauthorized", "this server needs a bearer token: send Authorization: Bearer <token>")
        access = self.options.access_of(token.strip())
        if access is None:
            return HttpError("unauthorized", "the bearer token is not one of this server's; check it")
        if access == "read" and scope["method"] not in ("GET", "HEAD"):
            return HttpError("forbidden", "this token may only read (it is one of [web] read_tokens)")
        return None


class AccessLog:
    """One line per request on the ``asm_web.access`` logger: client, method, path,
    status, bytes and seconds. Never a query string, a header or a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        size = 0

        async def counted(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            client = scope.get("client") or ("-", 0)
            _access.info(
                '%s "%s %s" %s %d %.3fs',
                client[0],
                scope["method"],
                scope["path"],
                status or "-",
                size,
                time.perf_counter() - started,
            )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(AsmError("not_found", f"no such endpoint: {request.url.path[:200]}"))
    if exc.status_code == 405:
        return error_response(HttpError("method_not_allowed", f"{request.method} is not allowed on this path"))
    return error_response(AsmError("validation_error", str(exc.detail)))


async def _crash(request: Request, exc: Exception) -> Response:
    _log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(AsmError("internal_error", "the server failed on this request; see its log"))


def create_app(service: WebService) -> Starlette:
    """The ASGI application of ``service``: ``/v1`` API, SSE streams, the viewer at ``/``."""
    api = Api(service)
    e = _endpoint
    routes = [
        Route("/", e(api.viewer), methods=["GET"]),
        Route("/static/{path:path}", e(api.static), methods=["GET"]),
        Route("/v1/health", e(api.health), methods=["GET"]),
        Route("/v1/ready", e(api.ready), methods=["GET"]),
        Route("/v1/openapi.json", e(api.openapi), methods=["GET"]),
        Route("/v1/sessions", e(api.list_sessions), methods=["GET"]),
        Route("/v1/sessions", e(api.create_session), methods=["POST"]),
        Route("/v1/sessions/stream", e(api.stream_sessions), methods=["GET"]),
        Route("/v1/sessions/{session_id}", e(api.get_session), methods=["GET"]),
        Route("/v1/sessions/{session_id}/complete", e(api.complete_session), methods=["POST"]),
        Route("/v1/sessions/{session_id}/cancel", e(api.cancel_session), methods=["POST"]),
        Route("/v1/sessions/{session_id}/fork", e(api.fork_session), methods=["POST"]),
        Route("/v1/sessions/{session_id}/runs", e(api.list_runs), methods=["GET"]),
        Route("/v1/sessions/{session_id}/runs", e(api.submit_run), methods=["POST"]),
        Route("/v1/sessions/{session_id}/events", e(api.read_events), methods=["GET"]),
        Route("/v1/sessions/{session_id}/events/stream", e(api.stream_events), methods=["GET"]),
        Route("/v1/runs/{run_id}", e(api.get_run), methods=["GET"]),
        Route("/v1/runs/{run_id}/cancel", e(api.cancel_run), methods=["POST"]),
        Route("/v1/runs/{run_id}/wait", e(api.wait_run), methods=["GET"]),
        Route("/v1/usage", e(api.usage), methods=["GET"]),
    ]
    middleware = [Middleware(AccessLog)]
    if service.options.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(service.options.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            )
        )
    middleware.append(Middleware(Guard, service=service))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )
