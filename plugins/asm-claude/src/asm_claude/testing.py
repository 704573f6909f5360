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

import json
import re
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import attrs

from asm.testing.http import STALL_LIMIT as STALL_LIMIT
from asm.testing.http import FakeHTTPServer as FakeHTTPServer
from asm.testing.http import RecordedRequest as RecordedRequest
from asm.testing.http import Reply as Reply
from asm.testing.http import cut_stream as cut_stream
from asm.testing.http import json_reply, serve_main, sse_reply
from asm.testing.http import reset_reply as reset_reply
from asm.testing.http import sse as sse

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


def _stream_reply(body: bytes, **kwargs: Any) -> Reply:
    return sse_reply(body, {"request-id": "req_fake"}, **kwargs)


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


def error_reply(
    status: int,
    error_type: str,
    message: str = "fake error",
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An HTTP error in the API's format: ``{"type": "error", "error": {"type", "message"}}``."""
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_fake"}
    return json_reply(status, body, headers={"request-id": "req_fake", **(headers or {})}, retry_after=retry_after)


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


_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def messages_request_problem(body: Any) -> str | None:
    """Why the Messages API would refuse ``body`` with a 400 (``None``: it would not), for
    what asm's requests can get wrong: message shapes and roles, empty text, tool blocks
    without tools, malformed tool ids, and tool pairing - each ``tool_use`` answered by a
    ``tool_result`` in the very next message (results first in it), each ``tool_result``
    answering a ``tool_use`` of the message before."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: field required (a non-empty list)"
    messages: list[Any] = body["messages"]
    tools = bool(body.get("tools"))
    previous_uses: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i == 0 and message["role"] != "user":
            return 'messages: first message must use the "user" role'
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        types = [b.get("type") if isinstance(b, dict) else None for b in blocks]
        if any(b.get("type") == "text" and not str(b.get("text", "")).strip() for b in blocks if isinstance(b, dict)):
            return f"messages.{i}: text content blocks must be non-empty"
        if not tools and ("tool_use" in types or "tool_result" in types):
            return "Requests which include `tool_use` or `tool_result` blocks must define tools."
        results = [b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if previous_uses:
            missing = [u for u in previous_uses if u not in results]
            if (
                message["role"] != "user"
                or missing
                or types[: len(previous_uses)] != ["tool_result"] * len(previous_uses)
            ):
                return (
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing or previous_uses)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
        for j, result in enumerate(results):
            if result not in previous_uses:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {result}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
        previous_uses = []
        for j, block in enumerate(blocks):
            if isinstance(block, dict) and block.get("type") == "tool_use":
                if not _TOOL_ID.fullmatch(str(block.get("id", ""))):
                    return f"messages.{i}.content.{j}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                previous_uses.append(str(block["id"]))
    if previous_uses:
        return (
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
            f"after: {', '.join(previous_uses)}"
        )
    return None


def _validate(request: RecordedRequest) -> Reply | None:
    if request.method != "POST" or not request.path.endswith("/messages"):
        return None
    problem = messages_request_problem(request.body)
    return None if problem is None else error_reply(400, "invalid_request_error", problem)


class FakeAnthropicServer(FakeHTTPServer):
    """A fake Anthropic Messages API: point ``base_url`` at :attr:`url`.

    Without queued replies it streams the last user message back (model
    ``slow``: stalls mid-stream until the client disconnects). A request the real
    API would refuse (:func:`messages_request_problem`) gets its 400 instead.
    """

    def __init__(self, responder: Callable[[RecordedRequest], Reply] = _echo_responder, *, port: int = 0) -> None:
        super().__init__(responder, port=port, validator=_validate)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake API until interrupted; the first line printed is its base URL.

    ``python -m asm_claude.testing [--port N]``
    """
    serve_main(lambda port: FakeAnthropicServer(port=port), argv, description=main.__doc__)


if __name__ == "__main__":
    main()
