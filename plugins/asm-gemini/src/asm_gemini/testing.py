"""A fake Gemini API on loopback, for tests and offline examples.

:class:`FakeGeminiServer` is a real HTTP server (``asm.testing.http``: stdlib,
in a thread) on ``127.0.0.1`` with an ephemeral port. It answers
``POST /<api_version>/models/<model>:streamGenerateContent?alt=sse`` with
Server-Sent Events in the real wire format, so the google-genai SDK itself can
be pointed at it (``http_options={"base_url": server.url}``). It records every
request and misbehaves on demand::

    with FakeGeminiServer() as server:
        server.queue(text_stream("Hello!"))                         # the next reply
        server.queue(error_reply(429, "RESOURCE_EXHAUSTED", retry_delay=12))
        provider = GeminiProvider(api_key="test", base_url=server.url)
        ...
        server.requests[0].body["contents"]

Replies are taken from the queue in order; when it is empty, the server
streams the request's last user text back. Model ``slow`` stalls mid-stream
until the client disconnects; a model whose name does not start with
``gemini`` or ``slow`` is answered 404 NOT_FOUND, as the API answers an
unknown model. Builders: :func:`text_stream`, :func:`function_call_stream`,
:func:`safety_blocked_stream`, :func:`prompt_blocked_stream`,
:func:`error_reply`, :func:`stream_error`, and from ``asm.testing.http``
:func:`cut_stream`, :func:`reset_reply`, :func:`stalled`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from asm.testing.http import STALL_LIMIT as STALL_LIMIT
from asm.testing.http import FakeHTTPServer as FakeHTTPServer
from asm.testing.http import RecordedRequest as RecordedRequest
from asm.testing.http import Reply as Reply
from asm.testing.http import cut_stream as cut_stream
from asm.testing.http import json_reply, serve_main, sse, sse_reply
from asm.testing.http import reset_reply as reset_reply

__all__ = [
    "FakeGeminiServer",
    "RecordedRequest",
    "Reply",
    "chunks_reply",
    "cut_stream",
    "error_reply",
    "function_call_stream",
    "prompt_blocked_stream",
    "reset_reply",
    "safety_blocked_stream",
    "stalled",
    "stream_error",
    "text_chunks",
    "text_stream",
]

#: google.rpc status names of the HTTP statuses the API answers.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _usage(prompt: int, output: int, thoughts: int, cached: int) -> dict[str, Any]:
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output + thoughts}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
    return usage


def _chunk(parts: list[dict[str, Any]], model: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": model, "responseId": "resp_fake", **extra}


def chunks_reply(responses: Sequence[dict[str, Any]], **kwargs: Any) -> Reply:
    """A 200 answer streaming ``responses`` (``GenerateContentResponse`` objects) as
    ``data:`` events; ``kwargs`` as for :class:`Reply` (``chunks`` offsets, ``stall``)."""
    return sse_reply(sse([(None, response) for response in responses]), **kwargs)


def text_chunks(
    deltas: Sequence[str],
    *,
    model: str = "gemini-2.5-flash",
    finish: str = "STOP",
    thinking: str | None = None,
    prompt_tokens: int = 10,
    output_tokens: int = 5,
    thoughts_tokens: int = 0,
    cached_tokens: int = 0,
    signature: str | None = None,
) -> list[dict[str, Any]]:
    """The chunks of an answer made of ``deltas`` (a thought summary first with
    ``thinking``); the last carries ``finish`` and the usage."""
    chunks = []
    if thinking is not None:
        chunks.append(_chunk([{"text": thinking, "thought": True}], model))
    for i, delta in enumerate(deltas or [""]):
        part: dict[str, Any] = {"text": delta}
        if i == 0 and signature:
            part["thoughtSignature"] = signature
        chunks.append(_chunk([part], model))
    usage = _usage(prompt_tokens, output_tokens, thoughts_tokens, cached_tokens)
    last = chunks[-1]["candidates"][0]
    last["finishReason"] = finish
    chunks[-1]["usageMetadata"] = usage
    return chunks


def text_stream(text: str | Sequence[str], **kwargs: Any) -> Reply:
    """A streamed answer whose text is ``text`` (a str is sent a word per chunk);
    keyword arguments as for :func:`text_chunks`."""
    if isinstance(text, str):
        words = text.split(" ")
        deltas = [w + " " for w in words[:-1]] + words[-1:]
    else:
        deltas = list(text)
    return chunks_reply(text_chunks(deltas, **kwargs))


def function_call_stream(
    calls: Sequence[tuple[str, Any] | tuple[str, Any, str]],
    *,
    text: str | None = None,
    model: str = "gemini-2.5-flash",
    signature: str | None = "sig_fake",
    prompt_tokens: int = 20,
    output_tokens: int = 10,
) -> Reply:
    """An answer asking for functions: ``(name, args)`` or ``(name, args, id)``
    each (the Gemini API sends no ids; Vertex AI and newer models may), the
    first carrying ``signature`` as its ``thoughtSignature``; an optional
    ``text`` chunk first. The finishReason is STOP, as the API sends it."""
    chunks = [_chunk([{"text": text}], model)] if text is not None else []
    parts = []
    for i, call in enumerate(calls):
        function: dict[str, Any] = {"name": call[0], "args": call[1]}
        if len(call) == 3:
            function["id"] = call[2]
        part: dict[str, Any] = {"functionCall": function}
        if i == 0 and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    usage = _usage(prompt_tokens, output_tokens, 0, 0)
    chunks.append(_chunk(parts, model, "STOP", usageMetadata=usage))
    return chunks_reply(chunks)


def safety_blocked_stream(
    text: str = "", *, reason: str = "SAFETY", category: str = "HARM_CATEGORY_DANGEROUS_CONTENT"
) -> Reply:
    """An answer the filters stopped: ``text`` streamed, then finishReason ``reason``."""
    ratings = [{"category": category, "probability": "HIGH", "blocked": True}]
    chunks = [_chunk([{"text": text}], "gemini-2.5-flash")] if text else []
    last = _chunk([], "gemini-2.5-flash", reason, usageMetadata=_usage(8, 0, 0, 0))
    last["candidates"][0]["safetyRatings"] = ratings
    del last["candidates"][0]["content"]
    return chunks_reply([*chunks, last])


def prompt_blocked_stream(reason: str = "SAFETY") -> Reply:
    """The prompt refused: one chunk with ``promptFeedback.blockReason`` and no candidates."""
    ratings = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}]
    chunk = {
        "promptFeedback": {"blockReason": reason, "safetyRatings": ratings},
        "usageMetadata": _usage(8, 0, 0, 0),
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp_fake",
    }
    return chunks_reply([chunk])


def _error_body(status: int, message: str, details: list[dict[str, Any]]) -> dict[str, Any]:
    name = STATUS_NAMES.get(status, "UNKNOWN")
    return {"error": {"code": status, "message": message, "status": name, "details": details}}


def error_reply(
    status: int,
    message: str = "fake error",
    *,
    retry_delay: float | None = None,
    per_day: bool = False,
    details: Sequence[dict[str, Any]] = (),
    retry_after: float | None = None,
) -> Reply:
    """An HTTP error in the API's format: ``{"error": {"code", "message", "status", "details"}}``.

    ``retry_delay`` adds a ``RetryInfo`` detail (how the API says when to retry;
    ``retry_after`` a header instead); ``per_day`` a ``QuotaFailure`` on a daily quota."""
    items = list(details)
    if per_day:
        violation = {"quotaMetric": "generate_content_requests", "quotaId": "GenerateRequestsPerDayPerProject"}
        items.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]})
    if retry_delay is not None:
        items.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay:g}s"})
    return json_reply(status, _error_body(status, message, items), retry_after=retry_after)


def stream_error(status: int, message: str = "fake error", *, text: str = "partial ") -> Reply:
    """A stream that begins well (``text``), then carries an error chunk."""
    chunks = [_chunk([{"text": text}], "gemini-2.5-flash"), _error_body(status, message, [])]
    return chunks_reply(chunks)


def stalled(reply: Reply) -> Reply:
    """``reply`` cut halfway, the connection then held open until the client goes away."""
    return cut_stream(attrs.evolve(reply, stall=True))


def _model(path: str) -> str:
    return path.partition("/models/")[2].partition(":")[0]


def _echo_responder(request: RecordedRequest) -> Reply:
    model = _model(request.path)
    if not request.path.partition("?")[0].endswith(":streamGenerateContent"):
        return error_reply(404, f"the fake Gemini server serves only streamGenerateContent, not {request.path}")
    if not model.startswith(("gemini", "slow")):
        version = request.path.strip("/").partition("/")[0]
        return error_reply(404, f"models/{model} is not found for API version {version}, or is not supported")
    body = request.body if isinstance(request.body, dict) else {}
    contents = body.get("contents") or [{}]
    parts = contents[-1].get("parts") or []
    text = " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and "text" in p)
    reply = text_stream(text or "(empty)", model=model)
    return stalled(reply) if model == "slow" else reply


class FakeGeminiServer(FakeHTTPServer):
    """A fake Gemini API: point ``base_url`` at :attr:`url`.

    Without queued replies it streams the last user message back (model
    ``slow``: stalls mid-stream; a model not named ``gemini...``: 404).
    """

    def __init__(self, responder: Callable[[RecordedRequest], Reply] = _echo_responder, *, port: int = 0) -> None:
        super().__init__(responder, port=port)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake API until interrupted; the first line printed is its base URL.

    ``python -m asm_gemini.testing [--port N]``
    """
    serve_main(lambda port: FakeGeminiServer(port=port), argv, description=main.__doc__)


if __name__ == "__main__":
    main()
