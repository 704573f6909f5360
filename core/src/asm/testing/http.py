"""A fake HTTP server for provider tests: real sockets on loopback, replies from a
queue, every request recorded, misbehaviour on demand (errors, resets, cut and
stalled streams). Providers' own fakes (``asm_claude.testing``,
``asm_openai.testing``) build their wire formats on it.

It needs nothing but the standard library (pytest is not required), so
offline examples can use it too::

    with FakeHTTPServer(lambda request: Reply(200, b"ok")) as server:
        server.queue(Reply(429, b"slow down", {"retry-after": "2"}))
        ...  # point a client at server.url
        server.requests[0].body
"""

from __future__ import annotations

import http.server
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

__all__ = [
    "STALL_LIMIT",
    "FakeHTTPServer",
    "RecordedRequest",
    "Reply",
    "cut_stream",
    "json_reply",
    "reset_reply",
    "serve_main",
    "sse",
    "sse_reply",
]

#: How long a stalled reply waits for the client to go away before giving up.
STALL_LIMIT = 60.0


@attrs.frozen
class RecordedRequest:
    """One request the fake server received: method, path, headers (lower-case names), JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@attrs.frozen
class Reply:
    """What the fake server answers: ``status``, ``headers`` and ``body`` (bytes).

    ``chunks`` are offsets at which the body is split into separate writes
    (each flushed, so the client sees them arrive apart); ``stall`` holds the
    connection open after the body until the client closes it; ``reset``
    aborts the connection (TCP RST) instead of answering.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    chunks: tuple[int, ...] = ()
    stall: bool = False
    reset: bool = False


def sse(events: Sequence[tuple[str | None, Any]]) -> bytes:
    """SSE bytes for ``(event name or None, data)`` pairs; data is JSON-encoded unless a str."""
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def sse_reply(body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
    """A 200 answer streaming ``body`` (``sse(...)`` bytes) as ``text/event-stream``;
    ``kwargs`` as for :class:`Reply` (``chunks``, ``stall``)."""
    return Reply(200, body, {"content-type": "text/event-stream", **(headers or {})}, **kwargs)


def json_reply(
    status: int, body: Any, *, headers: dict[str, str] | None = None, retry_after: float | None = None
) -> Reply:
    """A JSON answer (an API's error response, typically); ``retry_after`` sets the header of that name."""
    all_headers = {"content-type": "application/json", **(headers or {})}
    if retry_after is not None:
        all_headers["retry-after"] = f"{retry_after:g}"
    return Reply(status, json.dumps(body).encode(), all_headers)


def cut_stream(reply: Reply, *, keep: float = 0.5) -> Reply:
    """``reply``'s stream cut after ``keep`` of its events: the connection closes
    before the final event."""
    events = reply.body.split(b"\n\n")
    kept = b"\n\n".join(events[: max(1, int(len(events) * keep))]) + b"\n\n"
    return attrs.evolve(reply, body=kept)


def reset_reply() -> Reply:
    """Abort the connection (TCP RST) without answering."""
    return Reply(reset=True)


class FakeHTTPServer:
    """A threaded HTTP server on 127.0.0.1 that answers from a queue of
    :class:`Reply` values (then ``responder``) and records every request.

    Use it as a context manager (or call :meth:`start` / :meth:`close`); the
    thread and every connection end on close.
    """

    def __init__(
        self,
        responder: Callable[[RecordedRequest], Reply],
        *,
        port: int = 0,
        validator: Callable[[RecordedRequest], Reply | None] | None = None,
    ) -> None:
        self.responder = responder
        #: Checks each request as the real API would: a reply it returns (a 400) is sent
        #: instead of the queued one, which stays queued.
        self.validator = validator
        self.requests: list[RecordedRequest] = []
        #: Connections the client closed while a stalled reply held them open.
        self.disconnects = 0
        #: Set when the first such connection closes.
        self.disconnected = threading.Event()
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-http-server", daemon=True
        )

    @property
    def port(self) -> int:
        """The ephemeral port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> None:
        """Start serving in a daemon thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving; stalled replies are released."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeHTTPServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1
        self.disconnected.set()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
        refused = self.validator(request) if self.validator is not None else None
        if refused is not None:
            return refused
        with self._lock:
            if self._queue:
                return self._sent(self._queue.pop(0))
        return self._sent(self.responder(request))

    def _sent(self, reply: Reply) -> Reply:
        """Called with every reply the server sends (a subclass may note what it issued)."""
        return reply

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = owner._next_reply(RecordedRequest(self.command, self.path, headers, body))
                if reply.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                streaming = reply.headers.get("content-type", "").startswith("text/event-stream")
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if streaming:
                    self.send_header("connection", "close")
                else:
                    self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.close_connection = streaming
                try:
                    start = 0
                    for offset in (*reply.chunks, len(reply.body)):
                        if offset > start:
                            self.wfile.write(reply.body[start:offset])
                            self.wfile.flush()
                            start = offset
                    if reply.stall:
                        self._stall()
                except OSError:
                    owner._disconnected()

            def _stall(self) -> None:
                deadline = time.monotonic() + STALL_LIMIT
                while not owner._closing.is_set() and time.monotonic() < deadline:
                    readable, _, _ = select.select([self.connection], [], [], 0.05)
                    if readable and not self.connection.recv(1024):
                        owner._disconnected()
                        return

        return Handler


def serve_main(
    make: Callable[[int], FakeHTTPServer],
    argv: Sequence[str] | None = None,
    *,
    url: Callable[[Any], str] = lambda server: str(server.url),
    description: str | None = None,
) -> None:
    """A fake server's command line (``python -m <plugin>.testing [--port N]``):
    serve ``make(port)`` until interrupted; the first line printed is ``url(server)``,
    the base URL to point a provider at."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    with make(args.port) as server:
        print(url(server), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
