"""A small streaming HTTP/1.1 client on trio, for providers of services that have no SDK.

One connection per request (``connection: close``), a JSON body out, the
response body streamed back (``content-length``, chunked, or up to EOF): all a
streaming API call needs, with nothing to install. A provider whose service has
an SDK uses that instead (``asm-claude`` and ``asm-openai`` do).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from asm.providers.http._service import ErrorRule, HTTPFailure, StatusRule

__all__ = ["HTTPClient", "HTTPProtocolError", "HTTPResponse", "HTTPStatusError", "InvalidURL", "client_rules"]

_MAX_HEAD = 64 * 1024


class InvalidURL(ValueError):
    """The base URL is not ``http://`` or ``https://`` with a host."""


class HTTPProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as the client reads it."""


class HTTPStatusError(Exception):
    """An error response (status >= 400), its body read whole."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = dict(headers)
        self.body = body

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HTTPResponse:
    """A response being read: ``status``, ``headers`` (lower-case names) and the
    body through :meth:`aiter_bytes` (what :func:`asm.sse.read_body` reads)."""

    def __init__(self, stream: trio.abc.Stream, status: int, headers: dict[str, str], rest: bytes) -> None:
        self.status = status
        self.headers = headers
        self._stream = stream
        self._rest = rest

    async def _raw(self) -> AsyncGenerator[bytes, None]:
        if self._rest:
            yield self._rest
        while chunk := await self._stream.receive_some(65536):
            yield bytes(chunk)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decoded from its transfer encoding, as it arrives."""
        async with contextlib.aclosing(self._raw()) as raw:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                async with contextlib.aclosing(_dechunk(raw)) as pieces:
                    async for piece in pieces:
                        yield piece
                return
            length = self.headers.get("content-length")
            left = int(length) if length is not None else None
            async for chunk in raw:
                if left is not None:
                    chunk = chunk[:left]
                    left -= len(chunk)
                yield chunk
                if left == 0:
                    return

    async def aread(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Close the connection."""
        await self._stream.aclose()


async def _dechunk(raw: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    buffer = b""
    size: int | None = None
    async for chunk in raw:
        buffer += chunk
        while True:
            if size is None:
                line, found, rest = buffer.partition(b"\r\n")
                if not found:
                    break
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError:
                    raise HTTPProtocolError(f"bad chunk size {line[:40]!r}") from None
                buffer = rest
                if size == 0:
                    return
            if len(buffer) < size + 2:
                break
            yield buffer[:size]
            buffer, size = buffer[size + 2 :], None


class HTTPClient:
    """Requests to one service: ``base_url`` plus a path, ``headers`` on each
    (the API key), ``timeout`` seconds to connect and get the response's head
    (``None``: no limit; a stalled body is the run's to cancel).

    >>> client = HTTPClient("http://127.0.0.1:8080", headers={"authorization": "Bearer k"})  # doctest: +SKIP
    >>> async with client.stream("/v1/chat", {"model": "lyre-1"}) as response:  # doctest: +SKIP
    ...     await read_body(response, consume)
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InvalidURL(f"{base_url!r} is not an http:// or https:// URL")
        self._url = url
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._ssl_context = ssl_context

    @asynccontextmanager
    async def stream(self, path: str, body: Any, *, method: str = "POST") -> AsyncIterator[HTTPResponse]:
        """Send ``body`` as JSON to ``path``; yield the response once its head is in.
        A status >= 400 raises :class:`HTTPStatusError` with the body read."""
        url = self._url
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        data = json.dumps(body).encode()
        head = {
            "host": url.netloc.rpartition("@")[2],
            "content-type": "application/json",
            "accept": "text/event-stream",
            "content-length": str(len(data)),
            "connection": "close",
            **self._headers,
        }
        target = url.path.rstrip("/") + path
        request = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(self._timeout if self._timeout is not None else float("inf")):
                if url.scheme == "https":
                    context = self._ssl_context or ssl.create_default_context()
                    stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
                else:
                    stream = await trio.open_tcp_stream(host, port)
                await stream.send_all(request.encode() + data)
                status, headers, rest = await _read_head(stream)
            response = HTTPResponse(stream, status, headers, rest)
            if status >= 400:
                raise HTTPStatusError(status, headers, await response.aread())
            yield response
        finally:
            if stream is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await stream.aclose()

    async def close(self) -> None:
        """Nothing to release: each request has its own connection."""


async def _read_head(stream: trio.abc.Stream) -> tuple[int, dict[str, str], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk or len(buffer) > _MAX_HEAD:
            raise HTTPProtocolError("the connection closed before a complete response head")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HTTPProtocolError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


def client_rules(status: Callable[[HTTPStatusError], HTTPFailure]) -> tuple[StatusRule | ErrorRule, ...]:
    """The exception table of a provider on :class:`HTTPClient`: error
    responses read by ``status``; timeouts; an invalid base URL; lost or
    garbled connections."""
    lost = (OSError, trio.BrokenResourceError, HTTPProtocolError)
    return (
        StatusRule((HTTPStatusError,), status),
        ErrorRule((trio.TooSlowError,), "provider_timeout", "timeout", "{api} timed out; retry the run"),
        ErrorRule(
            (InvalidURL,),
            "provider_error",
            "invalid_base_url",
            "the {vendor} base URL is invalid ({exc}); fix base_url in [providers.{provider}]",
            retryable=False,
        ),
        ErrorRule(
            lost,
            "provider_unavailable",
            "connection_error",
            "lost the connection to {api} ({cause_type}: {cause}); retry the run",
        ),
    )
