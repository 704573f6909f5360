"""Provider ``openai`` (Responses and Chat Completions) against a fake server speaking the real wire formats."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from asm.testing.http_contract import Fault, HTTPProviderFaultContract, provider_payloads, run_once

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
    assert provider_payloads(payloads) == [
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
    assert provider_payloads(payloads)[:6] == [
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
    assert provider_payloads(payloads)[:2] == [ThinkingStreamed("2 + 2 = 4"), MessageStreamed("four")]
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
            return provider_payloads((await run_once(provider))[1])

    assert trio.run(events, sorted(set(cuts))) == trio.run(events, [])


# -- errors ------------------------------------------------------------------

FAILURES = {
    "429": Fault(
        error_reply(429, "rate_limit_exceeded", "slow down", retry_after=12),
        "provider_rate_limited",
        True,
        "rate_limit_exceeded",
    ),
    "500": Fault(error_reply(500, "server_error", "boom"), "provider_unavailable", True, "server_error"),
    "503": Fault(error_reply(503, "server_error", "overloaded"), "provider_unavailable", True, "server_error"),
    "401": Fault(
        error_reply(401, "invalid_api_key", "bad key"), "provider_authentication_failed", False, "invalid_api_key"
    ),
    "403": Fault(
        error_reply(403, "unsupported_country", "no"), "provider_authentication_failed", False, "unsupported_country"
    ),
    "400": Fault(
        error_reply(400, "invalid_request_error", "bad input"), "provider_error", False, "invalid_request_error"
    ),
    "reset": Fault(reset_reply(), "provider_unavailable", True, "connection_error"),
}


class TestOpenAIFaults(HTTPProviderFaultContract):
    """Both APIs (the module's ``provider`` is parametrized by ``api``)."""

    provider_name = "openai"
    key_variables = ("OPENAI_API_KEY",)
    failures = FAILURES

    @pytest.fixture
    def make_provider(self, server: FakeOpenAIServer, api: str) -> Callable[..., OpenAIProvider]:
        return lambda **options: OpenAIProvider(
            **{"api_key": "test-key", "base_url": server.base_url, "api": api, **options}
        )

    @pytest.fixture
    def text_reply(self, api: str) -> Callable[[str], Reply]:
        return lambda text: text_stream(api, text)


async def test_quota_is_not_retryable(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.queue(error_reply(429, "insufficient_quota", "no credit"))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == ("provider_quota_exceeded", False)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "later"}) is None


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


def test_model_for_names_the_configured_model_before_the_run() -> None:
    # run_started.model and pricing know the model even when it comes from [providers.openai]
    provider = create_provider({"model": "gpt-4o"})
    assert provider.model_for(asm.RunInput.coerce("hi")) == "gpt-4o"
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "o4-mini"})) == "o4-mini"
    assert OpenAIProvider().model_for(asm.RunInput.coerce("hi")) == "gpt-5.1"  # the default
