"""A fake Anthropic Messages API on loopback, for tests and offline examples.

:class:`FakeAnthropicServer` is a real HTTP server (stdlib, in a thread, so it
works under any event loop) on ``127.0.0.1`` with an ephemeral port. It answers
``POST /v1/messages`` with Server-Sent Events in the real wire format, records
every request it gets, and can misbehave on demand::

    with FakeAnthropicServer() as server:
        server.queue(text_stream("Hello!"))                      # the next reply
        server.queue(error_reply(429, "rate_limit_error", retry_after=12))
        provider = ClaudeProvider(api_key="test", base_url=server.url)
        ...
        server.requests[0].body["model"]

Replies are taken from the queue in order; when it is empty, ``responder``
(default: stream the request's last user text back) answers. A model named
``slow`` stalls mid-stream until the client disconnects. Builders here make
streams (:func:`text_stream`, :func:`tool_use_stream`, :func:`recorded_stream`)
and failures (:func:`error_reply`, :func:`reset_reply`, :func:`cut_stream`).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import attrs

__all__ = [
    "FakeAnthropicServer",
    "RecordedRequest",
    "Reply",
    "cut_stream",
    "error_reply",
    "recorded_stream",
    "reset_reply",
    "sse",
    "text_stream",
    "tool_use_stream",
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


def _stream_reply(body: bytes, **kwargs: Any) -> Reply:
    return Reply(200, body, {"content-type": "text/event-stream", "request-id": "req_fake"}, **kwargs)


def _message_start(model: str, input_tokens: int, cache_read: int, cache_write: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
                "output_tokens": 1,
            },
        },
    }


def text_events(
    deltas: Sequence[str],
    *,
    model: str = "claude-fake-1",
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cache_read: int = 0,
    cache_write: int = 0,
    thinking: str | None = None,
) -> list[tuple[str | None, Any]]:
    """The events of a message made of ``deltas`` (and an optional thinking block first)."""
    events: list[tuple[str | None, Any]] = [
        ("message_start", _message_start(model, input_tokens, cache_read, cache_write))
    ]
    index = 0
    if thinking is not None:
        events += [
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": thinking}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]
        index = 1
    events.append(
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
    )
    events.append(("ping", {"type": "ping"}))
    for delta in deltas:
        events.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": delta}},
            )
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def text_stream(text: str | Sequence[str], **kwargs: Any) -> Reply:
    """A streamed message whose text is ``text`` (a str is sent as one delta
    per word); keyword arguments as for :func:`text_events`."""
    deltas = list(text.split(" ")) if isinstance(text, str) else list(text)
    if isinstance(text, str):
        deltas = [d + " " for d in deltas[:-1]] + deltas[-1:]
    return _stream_reply(sse(text_events(deltas, **kwargs)))


def tool_use_stream(
    calls: Sequence[tuple[str, str, Any]],
    *,
    text: str | None = None,
    model: str = "claude-fake-1",
    input_tokens: int = 20,
    output_tokens: int = 10,
) -> Reply:
    """A message asking for tools: ``(tool_use_id, name, input)`` each, the
    input streamed as ``input_json_delta`` fragments (a str is sent verbatim,
    e.g. malformed JSON); an optional ``text`` block first; stop reason ``tool_use``."""
    events: list[tuple[str | None, Any]] = [("message_start", _message_start(model, input_tokens, 0, 0))]
    index = 0
    if text is not None:
        events += [
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]
        index = 1
    for call_id, name, tool_input in calls:
        raw = tool_input if isinstance(tool_input, str) else json.dumps(tool_input)
        block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        for piece in ["", raw[: len(raw) // 2], raw[len(raw) // 2 :]]:
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _stream_reply(sse(events))


def recorded_bytes(name: str = "anthropic_messages_stream.sse") -> bytes:
    """The bytes of a stream recorded from the real API (shipped with this package)."""
    return resources.files("asm_claude").joinpath("recorded", name).read_bytes()


def recorded_stream(name: str = "anthropic_messages_stream.sse", *, chunks: Sequence[int] = ()) -> Reply:
    """Replay a recorded stream (thinking, text, a ``get_weather`` tool call),
    split into writes at ``chunks`` offsets."""
    return _stream_reply(recorded_bytes(name), chunks=tuple(chunks))


def cut_stream(reply: Reply, *, keep: float = 0.5) -> Reply:
    """``reply``'s stream cut after ``keep`` of its events: the connection closes
    before the final event."""
    events = reply.body.split(b"\n\n")
    kept = b"\n\n".join(events[: max(1, int(len(events) * keep))]) + b"\n\n"
    return attrs.evolve(reply, body=kept)


def error_reply(
    status: int,
    error_type: str,
    message: str = "fake error",
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An HTTP error in the API's format: ``{"type": "error", "error": {"type", "message"}}``."""
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_fake"})
    all_headers = {"content-type": "application/json", "request-id": "req_fake", **(headers or {})}
    if retry_after is not None:
        all_headers["retry-after"] = f"{retry_after:g}"
    return Reply(status, body.encode(), all_headers)


def reset_reply() -> Reply:
    """Abort the connection (TCP RST) without answering."""
    return Reply(reset=True)


def _echo_responder(request: RecordedRequest) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content", "")
    if isinstance(content, list):
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    model = str(body.get("model", "claude-fake-1"))
    reply = text_stream(str(content) or "(empty)", model=model)
    if model == "slow":
        return cut_stream(attrs.evolve(reply, stall=True))
    return reply


class FakeHTTPServer:
    """A threaded HTTP server on 127.0.0.1 that answers from a queue of
    :class:`Reply` values (then ``responder``) and records every request.

    Use it as a context manager (or call :meth:`start` / :meth:`close`); the
    thread and every connection end on close.
    """

    def __init__(self, responder: Callable[[RecordedRequest], Reply], *, port: int = 0) -> None:
        self.responder = responder
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
            if self._queue:
                return self._queue.pop(0)
        return self.responder(request)

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


class FakeAnthropicServer(FakeHTTPServer):
    """A fake Anthropic Messages API: point ``base_url`` at :attr:`url`.

    Without queued replies it streams the last user message back (model
    ``slow``: stalls mid-stream until the client disconnects).
    """

    def __init__(self, responder: Callable[[RecordedRequest], Reply] = _echo_responder, *, port: int = 0) -> None:
        super().__init__(responder, port=port)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake API until interrupted; the first line printed is its base URL.

    ``python -m asm_claude.testing [--port N]``
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    server = FakeAnthropicServer(port=args.port)
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
