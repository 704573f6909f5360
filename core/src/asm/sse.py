"""Server-Sent Events for providers that stream over HTTP: an incremental
decoder, a way to read a response body that leaves nothing half-read, the
wait an HTTP error response asks for (``retry_after_seconds``), and one
classification of HTTP failures into asm's errors (``http_status_failure``).

::

    decoder = SSEDecoder()
    async def consume(chunks):
        async for chunk in chunks:
            for name, data in decoder.feed(chunk):
                handle(name, json.loads(data))
    await read_body(response, consume)
"""

from __future__ import annotations

import codecs
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

import trio

from asm.errors import AsmError
from asm.events import ProviderError

__all__ = [
    "SSEDecoder",
    "StreamingResponse",
    "http_status_failure",
    "loads_event",
    "provider_failure",
    "read_body",
    "retry_after_seconds",
]


_fast_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # orjson is optional: the standard library reads the same, slower
    _fast_loads = None


def loads_event(data: str | bytes) -> Any:
    """The JSON value of one event's ``data``: what ``json.loads`` returns, and
    ``ValueError`` where it raises, but several times faster on the small
    objects an API streams when orjson is installed (the HTTP provider plugins
    depend on it). One difference: an integer beyond 64 bits comes back as a
    float, as orjson reads it; streamed API events carry none (tool arguments,
    which the model writes, are read with ``json.loads``).

    >>> loads_event('{"type": "ping", "n": [1, 2.5, null]}')
    {'type': 'ping', 'n': [1, 2.5, None]}
    """
    if _fast_loads is not None:
        try:
            return _fast_loads(data)
        except ValueError:
            pass  # NaN, infinities, a lone surrogate: json reads those (or says what is wrong)
    return json.loads(data)


class StreamingResponse(Protocol):
    """What :func:`read_body` needs of an HTTP response (httpx's has both)."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


async def read_body(response: StreamingResponse, consume: Callable[[AsyncIterator[bytes]], Awaitable[None]]) -> None:
    """Hand ``response``'s body to ``consume``, leaving nothing half-read.

    On the normal path the rest of the body (normally just its end) is read
    after ``consume`` returns. On a failure or a cancellation the connection is
    closed first and the body iterator then run out (it ends at once): an HTTP
    client's inner async generators, abandoned midway, would otherwise be
    finalized by trio in a system task after the run.
    """
    chunks = response.aiter_bytes()
    try:
        await consume(chunks)
        async for _ in chunks:
            pass
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await response.aclose()
            with contextlib.suppress(Exception):
                async for _ in chunks:
                    pass
        raise
    finally:
        with trio.CancelScope(shield=True):
            await chunks.aclose()  # type: ignore[attr-defined]


class SSEDecoder:
    """Incremental Server-Sent Events decoder: bytes in (split anywhere),
    ``(event name, data)`` out for each complete event. Lines may end with
    ``\\n``, ``\\r\\n`` or ``\\r``; comments and other fields are ignored; an
    event cut off by the end of the stream is never returned.

    >>> decoder = SSEDecoder()
    >>> decoder.feed(b"event: ping\\ndata: {}\\n"), decoder.feed(b"\\n")
    ([], [('ping', '{}')])
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """The events completed by ``chunk``."""
        text = self._pending + self._decoder.decode(chunk)
        if "\r" in text:
            held = text.endswith("\r")  # perhaps half of a \r\n
            text = (text[:-1] if held else text).replace("\r\n", "\n").replace("\r", "\n") + ("\r" if held else "")
        *blocks, self._pending = text.split("\n\n")
        events = []
        for block in blocks:
            name = ""
            data = []
            for line in block.split("\n"):
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                elif line.startswith("event:"):
                    name = line[6:].strip()
            if data:
                events.append((name, data[0] if len(data) == 1 else "\n".join(data)))
        return events


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, else ``retry-after``
    (seconds or an HTTP date); ``None`` when absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def provider_failure(
    provider: str, code: str, kind: str, message: str, *, retryable: bool | None = None, **details: Any
) -> AsmError:
    """An :class:`AsmError` whose ``details["provider_error"]`` says which
    provider failed and how (``kind``), as runs record it.

    >>> provider_failure("claude", "provider_timeout", "timeout", "timed out").retryable
    True
    """
    return AsmError(
        code,
        message,
        retryable=retryable,
        details={"provider_error": ProviderError(provider, kind, message), **details},
    )


def http_status_failure(
    provider: str,
    api: str,
    status: int,
    kind: str,
    detail: str,
    headers: Mapping[str, str],
    *,
    request_id: str | None = None,
    fixes: Mapping[int, str] | None = None,
    quota: bool = False,
) -> AsmError:
    """An HTTP API's error response as an :class:`AsmError`, the same way for
    every provider: 429 is ``provider_rate_limited`` and 5xx, 408 and 409 are
    ``provider_unavailable`` (both retryable, with the ``retry_after`` the
    response asks for); 401 and 403 are ``provider_authentication_failed``;
    ``quota`` (the caller reads it off the body) is ``provider_quota_exceeded``;
    anything else is ``provider_error``. The message names ``api``, the status,
    the API's ``kind`` and ``detail``, then what to do: ``fixes[status]`` when
    given.

    >>> error = http_status_failure("claude", "the Anthropic API", 429, "rate_limit_error", "slow down", {})
    >>> error.code, error.retryable, error.message
    ('provider_rate_limited', True, 'the Anthropic API answered 429 (rate_limit_error): slow down; retry later')
    """
    fixes = fixes or {}
    retry_after = retry_after_seconds(headers)
    details: dict[str, Any] = {"status": status, "request_id": request_id}
    if retry_after is not None:
        details["retry_after"] = retry_after
    later = f"retry after {retry_after:g}s" if retry_after is not None else "retry later"
    if quota:
        code, fix = "provider_quota_exceeded", fixes.get(status, "check the account's plan, billing and credit")
    elif status == 429:
        code, fix = "provider_rate_limited", later
    elif status >= 500 or status in (408, 409):
        code, fix = "provider_unavailable", later
    elif status in (401, 403):
        code, fix = "provider_authentication_failed", fixes.get(status, "check the API key")
    else:
        code, fix = "provider_error", fixes.get(status, "fix the request")
    return provider_failure(provider, code, kind, f"{api} answered {status} ({kind}): {detail}; {fix}", **details)
