"""Server-Sent Events for providers that stream over HTTP: an incremental
decoder, a way to read a response body that leaves nothing half-read, and
the wait an HTTP error response asks for (``retry_after_seconds``).

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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Protocol

import trio

__all__ = ["SSEDecoder", "StreamingResponse", "read_body", "retry_after_seconds"]


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
