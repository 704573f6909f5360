"""Write a provider in an afternoon: ``lyre``, for the (imaginary) Lyre chat API, on asm's HTTP provider kit.

The kit (:mod:`asm.providers.http`) runs the tool loop, checks options, reads
Server-Sent Events, accounts turns and usage, classifies HTTP failures and
cleans up on cancellation; this file supplies only what is Lyre's own:

1. its options (the kit's common ones, Lyre's default model and temperature range);
2. its :class:`~asm.providers.http.Service`: names, API-key variable, how to read
   an error response, what to do after each status;
3. its wire mapping: the conversation and request, and one SSE event to asm payloads;
4. a fake Lyre server (``asm.testing.http``) and the provider contract suite.

The Lyre API: ``POST /v1/chat`` with ``{"model", "messages", "tools", "max_tokens",
"temperature"}`` and ``authorization: Bearer <key>``; it answers with SSE events
``begin`` / ``text`` / ``thought`` / ``call`` / ``end`` / ``error`` (see
:func:`lyre_events`), and errors as ``{"error": {"code", "message"}}``.

Run it (offline): ``python examples/provider_in_an_afternoon.py`` — a run with a
tool against the fake server, then this file's tests under pytest.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
import trio

import asm
from asm.events import MessageStreamed, ThinkingStreamed, ToolCallStarted
from asm.ports import Emit
from asm.providers.http import (
    HTTPClient,
    HTTPFailure,
    HTTPOptions,
    HTTPProvider,
    HTTPStatusError,
    RunContext,
    Service,
    ToolCall,
    Turn,
    client_rules,
    option,
)
from asm.testing import ProviderContract
from asm.testing.http import FakeHTTPServer, RecordedRequest, Reply, cut_stream, json_reply, sse, sse_reply
from asm.tools import ToolOutcome

# -- 1. options -----------------------------------------------------------------


@attrs.frozen
class LyreOptions(HTTPOptions):
    """``[providers.lyre]``: model, system_prompt, max_turns, max_tokens, temperature,
    permission_mode, api_key (else LYRE_API_KEY), base_url, tools, sdk_opts."""

    model: str = option("lyre-1", nonempty=True)
    temperature: float | None = option(None, min=0.0, max=2.0)
    base_url: str | None = "https://api.lyre.invalid"


# -- 2. the service: names and error specifics -----------------------------------


def read_error(exc: HTTPStatusError) -> HTTPFailure:
    """A Lyre error response: ``{"error": {"code", "message"}}``; code ``out_of_credit`` is billing."""
    body = exc.json()
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("code") or f"http_{exc.status}")
    detail = str(error.get("message") or exc.body[:200].decode("utf-8", "replace"))
    request_id = exc.headers.get("x-lyre-request")
    return HTTPFailure(exc.status, kind, detail, exc.headers, request_id=request_id, quota=kind == "out_of_credit")


SERVICE = Service(
    provider="lyre",
    vendor="Lyre",
    key_env="LYRE_API_KEY",
    fixes={400: "fix the request (model, max_tokens or tools)", 404: "check the model name and base_url"},
    rules=client_rules(read_error),
)

#: Mid-stream error codes: (asm error code, retryable).
STREAM_ERRORS = {"overloaded": ("provider_unavailable", True), "rate_limited": ("provider_rate_limited", True)}


# -- 3. the wire mapping ------------------------------------------------------------


class LyreTurn(Turn):
    """One Lyre response: each SSE event mapped to asm payloads."""

    final_event = "end"

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        self.parts: list[str] = []

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        data = self.load(name, raw)
        kind = data["type"]
        if kind == "text":
            self.parts.append(data["text"])
            await emit(MessageStreamed(data["text"]))
        elif kind == "thought":
            await emit(ThinkingStreamed(data["text"]))
        elif kind == "call":
            call = ToolCall(str(data["id"]), str(data["name"]), dict(data["input"]))
            self.tool_calls.append(call)
            await emit(ToolCallStarted(call.id, call.name, call.input))
        elif kind == "begin":
            self.model, self.response_id = data["model"], data["id"]
        elif kind == "end":
            usage = data["usage"]
            self.usage = asm.TokenUsage(int(usage["input"]), int(usage["output"]))
            self.stop_reason = {"done": "end_turn", "tools": "tool_use", "length": "max_tokens"}.get(data["stop"])
            self.text = "".join(self.parts)
            return True
        elif kind == "error":
            code, retryable = STREAM_ERRORS.get(data["code"], ("provider_error", False))
            raise self.service.mid_stream(data["code"], data["message"], code=code, retryable=retryable)
        return False

    def replay(self) -> list[Any]:
        calls = [{"id": c.id, "name": c.name, "input": c.input} for c in self.tool_calls]
        return [{"role": "model", "text": self.text, "calls": calls}]


class LyreProvider(HTTPProvider[LyreOptions]):
    """The Lyre chat API as an asm provider."""

    name = "lyre"
    service = SERVICE
    options_class = LyreOptions
    turn_class = LyreTurn

    def client(self, options: LyreOptions, api_key: str | None, client_opts: dict[str, Any], ssl_context: Any) -> Any:
        return HTTPClient(
            options.base_url or "https://api.lyre.invalid",
            headers={"authorization": f"Bearer {api_key}"},
            timeout=client_opts.get("timeout"),
            ssl_context=ssl_context,
        )

    def conversation(self, ctx: RunContext[LyreOptions]) -> list[Any]:
        prompt = [{"role": "system", "text": ctx.options.system_prompt}] if ctx.options.system_prompt else []
        roles = {"assistant": "model", "system": "system"}
        return prompt + [{"role": roles.get(m.role, "user"), "text": m.content} for m in ctx.run.messages]

    def request(self, ctx: RunContext[LyreOptions], conversation: list[Any]) -> dict[str, Any]:
        options = ctx.options
        request: dict[str, Any] = {"model": options.model, "messages": list(conversation)}
        if options.max_tokens is not None:
            request["max_tokens"] = options.max_tokens
        if options.temperature is not None:
            request["temperature"] = options.temperature
        if ctx.tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "schema": t.input_schema} for t in ctx.tools.values()
            ]
        return {**request, **ctx.extra}

    def open_stream(self, client: HTTPClient, request: dict[str, Any]) -> Any:
        return client.stream("/v1/chat", request)

    def tool_results(self, results: Sequence[tuple[ToolCall, ToolOutcome]]) -> list[Any]:
        return [{"role": "tool", "call_id": c.id, "text": o.content, "error": o.is_error} for c, o in results]


def create_provider(config: dict[str, Any], *, registry: Any = None) -> LyreProvider:
    """The factory a plugin registers: ``register("lyre", create_provider)`` in ``asm_register_providers``."""
    provider: LyreProvider = LyreProvider.from_config(config, registry=registry)
    return provider


# -- 4. a fake Lyre server, on asm.testing.http ---------------------------------------


def lyre_events(
    text: str = "", *, calls: Sequence[tuple[str, str, dict[str, Any]]] = (), model: str = "lyre-1"
) -> list[tuple[str | None, Any]]:
    """The events of one answer: ``text`` a word per event, then tool ``calls`` (id, name, input)."""
    words = text.split(" ") if text else []
    events: list[tuple[str | None, Any]] = [(None, {"type": "begin", "id": "ly_1", "model": model})]
    events += [(None, {"type": "text", "text": w + (" " if i < len(words) - 1 else "")}) for i, w in enumerate(words)]
    events += [(None, {"type": "call", "id": i, "name": n, "input": args}) for i, n, args in calls]
    stop = "tools" if calls else "done"
    events.append((None, {"type": "end", "stop": stop, "usage": {"input": 12, "output": 3 + len(words)}}))
    return events


def lyre_stream(text: str = "", **kwargs: Any) -> Reply:
    """A 200 answer streaming :func:`lyre_events`."""
    return sse_reply(sse(lyre_events(text, **kwargs)))


def lyre_error(status: int, code: str, message: str = "fake error", *, retry_after: float | None = None) -> Reply:
    """An error response in Lyre's format."""
    body = {"error": {"code": code, "message": message}}
    return json_reply(status, body, headers={"x-lyre-request": "req_fake"}, retry_after=retry_after)


def echo(request: RecordedRequest) -> Reply:
    """Without queued replies: stream the last message back (model ``slow``: stall mid-stream)."""
    model, last = request.body["model"], request.body["messages"][-1]["text"]
    reply = lyre_stream(last or "(empty)", model=model)
    return cut_stream(attrs.evolve(reply, stall=True)) if model == "slow" else reply


class FakeLyreServer(FakeHTTPServer):
    """A fake Lyre API on loopback: point ``base_url`` at :attr:`url`."""

    def __init__(self, responder: Callable[[RecordedRequest], Reply] = echo) -> None:
        super().__init__(responder)


# -- the provider contract suite (pytest) -------------------------------------------------


class TestLyreContract(ProviderContract):
    """Every provider's contract: events, streaming, concurrency, cancellation, timeouts."""

    @pytest.fixture
    def lyre_server(self) -> Any:
        with FakeLyreServer() as server:
            yield server

    @pytest.fixture
    def provider(self, lyre_server: FakeLyreServer) -> LyreProvider:
        return LyreProvider(api_key="k", base_url=lyre_server.url)

    @pytest.fixture
    def slow_provider(self, lyre_server: FakeLyreServer) -> LyreProvider:
        return LyreProvider(api_key="k", base_url=lyre_server.url, model="slow")


# -- the demonstration -------------------------------------------------------------------


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18 degrees in {city}"


async def demo() -> None:
    with FakeLyreServer() as server:
        server.queue(lyre_stream(calls=[("c1", "get_weather", {"city": "Oslo"})]), lyre_stream("Mild in Oslo."))
        provider = LyreProvider(api_key="k", base_url=server.url, tools=[get_weather], permission_mode="accept_all")
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider)
        run = await manager.run_once("Weather in Oslo?")
        events = (await manager.store.read_events(run.session_id, run_id=run.id)).events
        print(" ".join(e.type.value for e in events))
        print(f"{run.status.value}: {run.output!r}, {run.usage.total_tokens} tokens")
        assert run.result is not None and run.result.metadata["turns"] == 2
        assert run.output == "Mild in Oslo."
        assert server.requests[1].body["messages"][-1] == {
            "role": "tool",
            "call_id": "c1",
            "text": "18 degrees in Oslo",
            "error": False,
        }


if __name__ == "__main__":
    trio.run(demo)
    # The tests, as a plugin's own test suite runs them (in a fresh interpreter).
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]))
