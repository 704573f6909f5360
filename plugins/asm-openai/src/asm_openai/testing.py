"""A fake OpenAI API on loopback (Responses and Chat Completions), for tests and offline examples.

:class:`FakeOpenAIServer` is a real HTTP server (stdlib, in a thread, so it
works under any event loop) on ``127.0.0.1`` with an ephemeral port. It answers
``POST /v1/responses`` and ``POST /v1/chat/completions`` with Server-Sent
Events in the real wire formats, records every request it gets, and can
misbehave on demand::

    with FakeOpenAIServer() as server:
        # the next two replies: a streamed answer, then a rate limit
        server.queue(responses_text_stream("Hello!"), error_reply(429, "rate_limit_exceeded", retry_after=12))
        provider = OpenAIProvider(api_key="test", base_url=server.base_url)
        ...  # run it; then look at what the server was sent:
        assert server.requests[0].body["model"] == "gpt-5.1"

Replies are taken from the queue in order; when it is empty, ``responder``
(default: stream the request's last user text back, in the format of the path
asked) answers. A model named ``slow`` stalls mid-stream until the client
disconnects.
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
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "chat_text_stream",
    "chat_tool_stream",
    "cut_stream",
    "error_reply",
    "recorded_bytes",
    "recorded_stream",
    "reset_reply",
    "responses_text_stream",
    "responses_tool_stream",
    "sse",
]


def _response(model: str, status: str, output: list[Any], usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": output,
        "usage": usage,
    }


def _usage(input_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _stream_reply(body: bytes, **kwargs: Any) -> Reply:
    return sse_reply(body, {"x-request-id": "req_fake"}, **kwargs)


def responses_events(
    deltas: Sequence[str],
    *,
    model: str = "gpt-fake-1",
    calls: Sequence[tuple[str, str, Any]] = (),
    reasoning: str | None = None,
    input_tokens: int = 10,
    output_tokens: int = 5,
    cached: int = 0,
) -> list[tuple[str | None, Any]]:
    """The events of a Responses API stream: optional reasoning summary, a
    message made of ``deltas`` (if any), then ``(call_id, name, arguments)``
    function calls (arguments a str is sent verbatim)."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(model, "in_progress", [], None)},
        {"type": "response.in_progress", "response": _response(model, "in_progress", [], None)},
    ]
    output: list[dict[str, Any]] = []
    if reasoning is not None:
        index = len(output)
        item = {"id": "rs_fake", "type": "reasoning", "summary": []}
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.append(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": "rs_fake",
                "output_index": index,
                "summary_index": 0,
                "delta": reasoning,
            }
        )
        done = {**item, "summary": [{"type": "summary_text", "text": reasoning}]}
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        output.append(done)
    if deltas:
        index = len(output)
        text = "".join(deltas)
        item = {"id": "msg_fake", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        part = {"type": "output_text", "text": "", "annotations": []}
        events.append(
            {
                "type": "response.content_part.added",
                "item_id": "msg_fake",
                "output_index": index,
                "content_index": 0,
                "part": part,
            }
        )
        for delta in deltas:
            events.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_fake",
                    "output_index": index,
                    "content_index": 0,
                    "delta": delta,
                }
            )
        events.append(
            {
                "type": "response.output_text.done",
                "item_id": "msg_fake",
                "output_index": index,
                "content_index": 0,
                "text": text,
            }
        )
        content = [{"type": "output_text", "text": text, "annotations": []}]
        done = {**item, "status": "completed", "content": content}
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        output.append(done)
    for call_id, name, arguments in calls:
        index = len(output)
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        item_id = f"fc_{call_id}"
        item = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "", "call_id": call_id}
        item["name"] = name
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item_id,
                    "output_index": index,
                    "delta": piece,
                }
            )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": index,
                "arguments": raw,
            }
        )
        done = {**item, "status": "completed", "arguments": raw}
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        output.append(done)
    usage = _usage(input_tokens, output_tokens, cached)
    events.append({"type": "response.completed", "response": _response(model, "completed", output, usage)})
    return [(event["type"], {**event, "sequence_number": n}) for n, event in enumerate(events)]


def responses_text_stream(text: str | Sequence[str], **kwargs: Any) -> Reply:
    """A Responses API stream whose text is ``text`` (a str is sent one word per delta)."""
    return _stream_reply(sse(responses_events(_deltas(text), **kwargs)))


def responses_tool_stream(calls: Sequence[tuple[str, str, Any]], *, text: str = "", **kwargs: Any) -> Reply:
    """A Responses API stream that calls functions: ``(call_id, name, arguments)`` each."""
    return _stream_reply(sse(responses_events(_deltas(text) if text else [], calls=calls, **kwargs)))


def _deltas(text: str | Sequence[str]) -> list[str]:
    if not isinstance(text, str):
        return list(text)
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + words[-1:]


def _chunk(model: str, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def chat_events(
    deltas: Sequence[str],
    *,
    model: str = "gpt-fake-1",
    calls: Sequence[tuple[str, str, Any]] = (),
    reasoning: str | None = None,
    finish_reason: str | None = None,
    input_tokens: int = 10,
    output_tokens: int = 5,
    cached: int = 0,
) -> list[tuple[str | None, Any]]:
    """The chunks of a Chat Completions stream (with the usage chunk and ``[DONE]``)."""
    chunks = [_chunk(model, {"role": "assistant", "content": "", "refusal": None})]
    if reasoning is not None:
        chunks.append(_chunk(model, {"reasoning_content": reasoning}))
    chunks += [_chunk(model, {"content": delta}) for delta in deltas]
    for index, (call_id, name, arguments) in enumerate(calls):
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(_chunk(model, {"tool_calls": [first]}))
        for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
            chunks.append(_chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    finish = finish_reason or ("tool_calls" if calls else "stop")
    chunks.append(_chunk(model, {}, finish))
    usage = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    chunks.append(_chunk(model, None, usage=usage))
    return [(None, chunk) for chunk in chunks] + [(None, "[DONE]")]


def chat_text_stream(text: str | Sequence[str], **kwargs: Any) -> Reply:
    """A Chat Completions stream whose text is ``text`` (a str is sent one word per delta)."""
    return _stream_reply(sse(chat_events(_deltas(text), **kwargs)))


def chat_tool_stream(calls: Sequence[tuple[str, str, Any]], *, text: str = "", **kwargs: Any) -> Reply:
    """A Chat Completions stream that calls tools: ``(call_id, name, arguments)`` each."""
    return _stream_reply(sse(chat_events(_deltas(text) if text else [], calls=calls, **kwargs)))


def recorded_bytes(name: str = "openai_responses_stream.sse") -> bytes:
    """The bytes of a stream recorded from the real API (shipped with this package):
    ``openai_responses_stream.sse`` or ``openai_chat_stream.sse``."""
    return resources.files("asm_openai").joinpath("recorded", name).read_bytes()


def recorded_stream(name: str = "openai_responses_stream.sse", *, chunks: Sequence[int] = ()) -> Reply:
    """Replay a recorded stream (text, then a ``get_weather`` call), split into writes at ``chunks`` offsets."""
    return _stream_reply(recorded_bytes(name), chunks=tuple(chunks))


def error_reply(
    status: int,
    code: str,
    message: str = "fake error",
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An HTTP error in the API's format: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": code, "param": None, "code": code}}
    return json_reply(status, body, headers={"x-request-id": "req_fake", **(headers or {})}, retry_after=retry_after)


def _echo_responder(request: RecordedRequest) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    model = str(body.get("model", "gpt-fake-1"))
    chat = request.path.endswith("/chat/completions")
    messages = body.get("messages" if chat else "input") or [{}]
    if isinstance(messages, str):
        messages = [{"content": messages}]
    content = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    if isinstance(content, list):
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    text = str(content) or "(empty)"
    reply = chat_text_stream(text, model=model) if chat else responses_text_stream(text, model=model)
    if model == "slow":
        return cut_stream(attrs.evolve(reply, stall=True))
    return reply


def chat_request_problem(body: Any) -> str | None:
    """Why Chat Completions would refuse ``body`` with a 400 (``None``: it would not), for
    tool pairing: an assistant message's ``tool_calls`` each answered by a ``tool`` message
    right after it, and no ``tool`` message answering nothing."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return "Invalid value for 'messages': expected a non-empty array."
    pending: list[str] = []
    for message in body["messages"]:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'."
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            break
        if role not in ("system", "developer", "user", "assistant"):
            return f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool' and ..."
        pending = [str(c.get("id")) for c in message.get("tool_calls") or ()] if role == "assistant" else []
    if pending:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}"
        )
    return None


def responses_request_problem(body: Any, issued: set[str] | frozenset[str] = frozenset()) -> str | None:
    """Why the Responses API would refuse ``body`` with a 400 (``None``: it would not): a
    ``previous_response_id`` not in ``issued``, a ``function_call_output`` with no
    ``function_call`` (in the input, or the previous response), a ``function_call`` with no
    output."""
    if not isinstance(body, dict) or not isinstance(body.get("input"), (list, str)):
        return "Missing required parameter: 'input'."
    previous = body.get("previous_response_id")
    if previous is not None and previous not in issued:
        return f"Previous response with id '{previous}' not found."
    items = body["input"] if isinstance(body["input"], list) else []
    calls = [str(i.get("call_id")) for i in items if isinstance(i, dict) and i.get("type") == "function_call"]
    outputs = [str(i.get("call_id")) for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls and previous is None:
            return f"No tool call found for function call output with call_id {call_id}."
    for call_id in calls:
        if call_id not in outputs:
            return f"No tool output found for function call {call_id}."
    return None


_RESPONSE_ID = re.compile(rb'"id": ?"(resp_[^"]+)"')


class FakeOpenAIServer(FakeHTTPServer):
    """A fake OpenAI API: point ``base_url`` at :attr:`base_url` (``.../v1``).

    Without queued replies it streams the last user message back, as a
    Responses or Chat Completions stream by the path asked (model ``slow``:
    stalls mid-stream until the client disconnects). A request the real API would
    refuse (:func:`chat_request_problem`, :func:`responses_request_problem`, which knows
    the response ids this server sent) gets its 400 instead.
    """

    def __init__(self, responder: Callable[[RecordedRequest], Reply] = _echo_responder, *, port: int = 0) -> None:
        #: The response ids this server has sent (``previous_response_id`` may name them).
        self.issued: set[str] = set()
        super().__init__(responder, port=port, validator=self._validate)

    def _sent(self, reply: Reply) -> Reply:
        self.issued.update(match.decode() for match in _RESPONSE_ID.findall(reply.body))
        return reply

    def _validate(self, request: RecordedRequest) -> Reply | None:
        if request.method != "POST":
            return None
        if request.path.endswith("/chat/completions"):
            problem = chat_request_problem(request.body)
        elif request.path.endswith("/responses"):
            problem = responses_request_problem(request.body, self.issued)
            if problem is not None and problem.startswith("Previous response"):
                return error_reply(400, "previous_response_not_found", problem)
        else:
            return None
        return None if problem is None else error_reply(400, "invalid_request_error", problem)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the ``base_url`` the OpenAI SDK wants."""
        return f"{self.url}/v1"


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake API until interrupted; the first line printed is its base URL (``.../v1``).

    ``python -m asm_openai.testing [--port N]``
    """
    serve_main(lambda port: FakeOpenAIServer(port=port), argv, url=lambda s: s.base_url, description=main.__doc__)


if __name__ == "__main__":
    main()
