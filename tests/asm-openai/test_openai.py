"""Provider ``openai`` (Responses and Chat Completions) against a fake server speaking the real wire formats."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from asm_openai import OpenAIProvider, create_provider
from asm_openai._provider import retry_after_seconds
from asm_openai.testing import (
    FakeOpenAIServer,
    Reply,
    chat_text_stream,
    cut_stream,
    error_reply,
    recorded_bytes,
    recorded_stream,
    reset_reply,
    responses_text_stream,
)

import asm
from asm.events import (
    MessageReceived,
    MessageStreamed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.testing import ProviderContract

APIS = ["responses", "chat"]
RECORDED = {"responses": "openai_responses_stream.sse", "chat": "openai_chat_stream.sse"}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture(params=APIS)
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def provider(server: FakeOpenAIServer, api: str) -> OpenAIProvider:
    return OpenAIProvider(api_key="test-key", base_url=server.base_url, api=api)


def text_stream(api: str, text: str, **kwargs: Any) -> Reply:
    return responses_text_stream(text, **kwargs) if api == "responses" else chat_text_stream(text, **kwargs)


async def run_once(provider: OpenAIProvider, prompt: object = "hi", **options: Any) -> tuple[asm.Run, list[Any]]:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider)
    run = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(run.session_id, run_id=run.id)).events
    return run, [e.data for e in events]


def content(payloads: list[Any]) -> list[Any]:
    """The provider's own payloads (no run lifecycle, no message_sent)."""
    names = {"run_started", "run_completed", "run_failed", "message_sent"}
    return [p for p in payloads if p.type.value not in names]


class TestResponsesContract(ProviderContract):
    prompt = "Say hello to the contract."

    @pytest.fixture
    def provider(self, server: FakeOpenAIServer) -> OpenAIProvider:
        return OpenAIProvider(api_key="test-key", base_url=server.base_url)

    @pytest.fixture
    def slow_provider(self, server: FakeOpenAIServer) -> OpenAIProvider:
        return OpenAIProvider(api_key="test-key", base_url=server.base_url, model="slow")


class TestChatContract(ProviderContract):
    prompt = "Say hello to the contract."

    @pytest.fixture
    def provider(self, server: FakeOpenAIServer) -> OpenAIProvider:
        return OpenAIProvider(api_key="test-key", base_url=server.base_url, api="chat")

    @pytest.fixture
    def slow_provider(self, server: FakeOpenAIServer) -> OpenAIProvider:
        return OpenAIProvider(api_key="test-key", base_url=server.base_url, api="chat", model="slow")


async def test_recorded_responses_stream(server: FakeOpenAIServer) -> None:
    server.queue(recorded_stream(RECORDED["responses"]))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url)
    run, payloads = await run_once(provider, "Weather in Paris?", max_turns=1)
    not_run = "not run: the run reached max_turns=1"
    assert content(payloads) == [
        MessageStreamed("Let me"),
        MessageStreamed(" check the weather"),
        MessageStreamed("."),
        ToolCallStarted("call_12345xyz", "get_weather", {"location": "Paris, France"}),
        MessageReceived("Let me check the weather."),
        TokenUsageUpdated(asm.TokenUsage(57, 29), "gpt-4.1-2025-04-14"),
        TurnCompleted(1),
        ToolCallFailed("call_12345xyz", "get_weather", not_run),
    ]
    assert run.result is not None
    assert (run.output, run.result.model, run.result.stop_reason) == (
        "Let me check the weather.",
        "gpt-4.1-2025-04-14",
        "max_turns",
    )


async def test_recorded_chat_stream(server: FakeOpenAIServer) -> None:
    server.queue(recorded_stream(RECORDED["chat"]))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api="chat")
    run, payloads = await run_once(provider, "Weather in Paris?", max_turns=1)
    assert content(payloads)[:6] == [
        MessageStreamed("Checking"),
        MessageStreamed(" now."),
        ToolCallStarted("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", {"location": "Paris"}),
        MessageReceived("Checking now."),
        TokenUsageUpdated(asm.TokenUsage(82, 18), "gpt-4o-2024-08-06"),
        TurnCompleted(1),
    ]
    assert run.result is not None
    assert (run.result.model, run.usage) == ("gpt-4o-2024-08-06", asm.TokenUsage(82, 18))


async def test_stop_reason_and_cached_tokens(server: FakeOpenAIServer, provider: OpenAIProvider, api: str) -> None:
    server.queue(text_stream(api, "done", input_tokens=100, output_tokens=3, cached=60))
    run, payloads = await run_once(provider)
    assert run.result is not None
    assert run.result.stop_reason == "end_turn"
    usage = asm.TokenUsage(input_tokens=100, output_tokens=3, cache_read_tokens=60)
    assert [p for p in payloads if isinstance(p, TokenUsageUpdated)] == [TokenUsageUpdated(usage, "gpt-fake-1")]


async def test_reasoning_is_thinking(server: FakeOpenAIServer, provider: OpenAIProvider, api: str) -> None:
    server.queue(text_stream(api, "four", reasoning="2 + 2 = 4"))
    run, payloads = await run_once(provider)
    assert content(payloads)[:2] == [ThinkingStreamed("2 + 2 = 4"), MessageStreamed("four")]
    assert run.output == "four"


async def test_chat_length_is_max_tokens(server: FakeOpenAIServer) -> None:
    server.queue(chat_text_stream("cut", finish_reason="length"))
    run, _ = await run_once(OpenAIProvider(api_key="k", base_url=server.base_url, api="chat"))
    assert run.result is not None
    assert run.result.stop_reason == "max_tokens"


async def test_responses_request(server: FakeOpenAIServer) -> None:
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, model="gpt-x", system_prompt="Be brief.")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, "again"]
    messages[2] = {"role": "user", "content": "again"}
    run, _ = await run_once(provider, messages, temperature=0.3, max_tokens=50, sdk_opts={"top_p": 0.5})
    assert run.status is asm.RunStatus.COMPLETED, run.error
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/responses")
    assert request.headers["authorization"] == "Bearer k"
    assert request.body == {
        "model": "gpt-x",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        "max_output_tokens": 50,
        "temperature": 0.3,
        "top_p": 0.5,
        "stream": True,
    }


async def test_chat_request(server: FakeOpenAIServer) -> None:
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api="chat", model="llama-3", system_prompt="Hi.")
    run, _ = await run_once(provider, "hello", max_tokens=20, sdk_opts={"seed": 7})
    assert run.status is asm.RunStatus.COMPLETED, run.error
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "llama-3",
        "messages": [{"role": "system", "content": "Hi."}, {"role": "user", "content": "hello"}],
        "max_completion_tokens": 20,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(data=st.data())
@pytest.mark.parametrize("api_name", APIS)
def test_arbitrary_splits_give_the_same_events(api_name: str, data: st.DataObject) -> None:
    """However the bytes are split into writes, the provider emits the same events."""
    size = len(recorded_bytes(RECORDED[api_name]))
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=size - 1), max_size=12))

    async def events(chunks: list[int]) -> list[Any]:
        with FakeOpenAIServer() as fake:
            fake.queue(recorded_stream(RECORDED[api_name], chunks=chunks))
            provider = OpenAIProvider(api_key="k", base_url=fake.base_url, api=api_name, max_turns=1)
            return content((await run_once(provider))[1])

    assert trio.run(events, sorted(set(cuts))) == trio.run(events, [])


# -- errors ------------------------------------------------------------------

HTTP_FAILURES = {
    "429": (error_reply(429, "rate_limit_exceeded", "slow down", retry_after=12), "provider_rate_limited", True),
    "500": (error_reply(500, "server_error", "boom"), "provider_unavailable", True),
    "503": (error_reply(503, "server_error", "overloaded"), "provider_unavailable", True),
    "401": (error_reply(401, "invalid_api_key", "bad key"), "provider_authentication_failed", False),
    "403": (error_reply(403, "unsupported_country", "no"), "provider_authentication_failed", False),
    "400": (error_reply(400, "invalid_request_error", "bad input"), "provider_error", False),
    "reset": (reset_reply(), "provider_unavailable", True),
}
KINDS = {
    "429": "rate_limit_exceeded",
    "500": "server_error",
    "503": "server_error",
    "401": "invalid_api_key",
    "403": "unsupported_country",
    "400": "invalid_request_error",
    "reset": "connection_error",
}


@pytest.mark.parametrize(
    ("reply", "code", "retryable", "kind"),
    [(*HTTP_FAILURES[name], KINDS[name]) for name in HTTP_FAILURES],
    ids=list(HTTP_FAILURES),
)
async def test_http_failures_fail_the_run(
    server: FakeOpenAIServer, provider: OpenAIProvider, reply: Reply, code: str, retryable: bool, kind: str
) -> None:
    server.queue(reply)
    run, payloads = await run_once(provider)
    assert run.status is asm.RunStatus.FAILED
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == (code, retryable)
    assert run.error.provider_error is not None
    assert (run.error.provider_error.provider, run.error.provider_error.kind) == ("openai", kind)
    assert payloads[-1].provider_error == run.error.provider_error


async def test_rate_limit_says_when_to_retry(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.queue(error_reply(429, "rate_limit_exceeded", "slow down", retry_after=12))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.details["retry_after"], run.error.details["status"]) == (12.0, 429)
    assert "retry after 12s" in run.error.message


async def test_quota_is_not_retryable(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.queue(error_reply(429, "insufficient_quota", "no credit"))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == ("provider_quota_exceeded", False)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "later"}) is None


async def test_missing_key_names_the_env_var_and_config_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run, _ = await run_once(OpenAIProvider(base_url=server.base_url))
    assert run.error is not None
    assert run.error.code == "provider_authentication_failed"
    assert "OPENAI_API_KEY" in run.error.message
    assert "api_key in [providers.openai]" in run.error.message
    assert server.requests == []


async def test_the_env_var_key_is_used(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    run, _ = await run_once(OpenAIProvider(base_url=server.base_url))
    assert run.status is asm.RunStatus.COMPLETED
    assert server.requests[0].headers["authorization"] == "Bearer from-env"


async def test_cut_stream_is_interrupted(server: FakeOpenAIServer, provider: OpenAIProvider, api: str) -> None:
    server.queue(cut_stream(recorded_stream(RECORDED[api])))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == ("provider_unavailable", True)
    assert run.error.provider_error is not None
    assert run.error.provider_error.kind == "stream_interrupted"


MID_STREAM = {
    "responses-failed": (
        "responses",
        b'event: response.failed\ndata: {"type": "response.failed", "response": '
        b'{"error": {"code": "server_error", "message": "oops"}}}\n\n',
        "provider_unavailable",
    ),
    "responses-error": (
        "responses",
        b'event: error\ndata: {"type": "error", "code": "rate_limit_exceeded", "message": "slow"}\n\n',
        "provider_rate_limited",
    ),
    "chat-error": (
        "chat",
        b'data: {"error": {"message": "bad", "type": "invalid_request_error"}}\n\n',
        "provider_error",
    ),
}


@pytest.mark.parametrize(("api_name", "body", "code"), list(MID_STREAM.values()), ids=list(MID_STREAM))
async def test_mid_stream_errors(server: FakeOpenAIServer, api_name: str, body: bytes, code: str) -> None:
    server.queue(Reply(200, body, {"content-type": "text/event-stream"}))
    run, _ = await run_once(OpenAIProvider(api_key="k", base_url=server.base_url, api=api_name))
    assert run.error is not None
    assert run.error.code == code


MALFORMED = {
    "responses-json": ("responses", b"event: response.created\ndata: {oops\n\n"),
    "responses-shape": ("responses", b'data: {"type": "response.output_text.delta"}\n\n'),
    "responses-list": ("responses", b"data: [1, 2]\n\n"),
    "chat-json": ("chat", b"data: {oops\n\n"),
    "chat-shape": ("chat", b'data: {"choices": [{"delta": 5}]}\n\n'),
}  # fmt: skip


@pytest.mark.parametrize(("api_name", "body"), list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_sse_fails_the_run(server: FakeOpenAIServer, api_name: str, body: bytes) -> None:
    server.queue(Reply(200, body, {"content-type": "text/event-stream"}))
    run, _ = await run_once(OpenAIProvider(api_key="k", base_url=server.base_url, api=api_name))
    assert run.status is asm.RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "provider_error"
    assert run.error.provider_error is not None
    assert run.error.provider_error.kind == "malformed_stream"


async def test_cancellation_closes_the_connection(server: FakeOpenAIServer, api: str) -> None:
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api=api, model="slow")
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider)
    streamed = trio.Event()

    def on_event(event: asm.Event) -> None:
        if isinstance(event.data, MessageStreamed):
            streamed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: manager.run_once("one two three four", on_event=on_event))
        await streamed.wait()
        nursery.cancel_scope.cancel()
    assert await trio.to_thread.run_sync(server.disconnected.wait, 10)
    assert server.disconnects == 1


# -- options -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_turns": 0}, "max_turns"),
        ({"permission_mode": "maybe"}, "permission_mode"),
        ({"temperature": 5.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"colour": "blue"}, "colour"),
        ({"tools": "get_weather"}, "tools"),
    ],
)
async def test_bad_run_options_are_invalid_input(
    server: FakeOpenAIServer, options: dict[str, Any], fragment: str
) -> None:
    run, _ = await run_once(OpenAIProvider(api_key="k", base_url=server.base_url), **options)
    assert run.error is not None
    assert run.error.code == "invalid_input"
    assert fragment in run.error.message
    assert server.requests == []


@pytest.mark.parametrize("config", [{"api": "completions"}, {"max_turns": 0}, {"nope": 1}, {"model": 3}], ids=str)
def test_bad_config_is_invalid_config(config: dict[str, Any]) -> None:
    with pytest.raises(asm.AsmError) as info:
        create_provider(config)
    assert info.value.code == "invalid_config"


def test_the_plugin_registers_openai() -> None:
    registry = asm.load_plugins()
    assert "openai" in registry.names("providers")
    provider = registry.create("providers", "openai", {"api": "chat", "base_url": "http://127.0.0.1:1/v1"})
    assert isinstance(provider, OpenAIProvider)
    assert provider.options.api == "chat"
    assert provider.capabilities() == asm.Capabilities(streaming=True, tools=True, thinking=True, authorizes_tools=True)


async def test_sdk_client_options_go_to_the_client(server: FakeOpenAIServer) -> None:
    """``max_retries`` from sdk_opts reaches the SDK client: one 500 is retried."""
    server.queue(error_reply(500, "server_error", retry_after=0), responses_text_stream("after retry"))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, sdk_opts={"max_retries": 1})
    run, _ = await run_once(provider)
    assert run.output == "after retry"
    assert len(server.requests) == 2


async def test_cancelled_while_events_back_up(server: FakeOpenAIServer, api: str) -> None:
    """Cancelled while emit waits for room (a slow consumer): the connection is
    closed and nothing is left half-read (no abandoned generator warnings)."""
    server.queue(text_stream(api, " ".join(f"d{i}" for i in range(2000))))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api=api)
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider, event_buffer_size=1)
    seen = trio.Event()

    async def slow_consumer(event: asm.Event) -> None:
        if isinstance(event.data, MessageStreamed):
            seen.set()
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: manager.run_once("x", on_event=slow_consumer))
        await seen.wait()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    gc.collect()
    await trio.testing.wait_all_tasks_blocked()


def test_model_for_names_the_configured_model_before_the_run() -> None:
    # run_started.model and pricing know the model even when it comes from [providers.openai]
    provider = create_provider({"model": "gpt-4o"})
    assert provider.model_for(asm.RunInput.coerce("hi")) == "gpt-4o"
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "o4-mini"})) == "o4-mini"
    assert OpenAIProvider().model_for(asm.RunInput.coerce("hi")) == "gpt-5.1"  # the default
