"""Provider ``claude`` (Messages API) against a fake server speaking the real wire format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import hypothesis
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from asm_claude.messages import ClaudeProvider, create_messages_provider, retry_after_seconds
from asm_claude.testing import (
    FakeAnthropicServer,
    Reply,
    error_reply,
    recorded_bytes,
    recorded_stream,
    reset_reply,
    text_stream,
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


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        yield fake


@pytest.fixture
def provider(server: FakeAnthropicServer) -> ClaudeProvider:
    return ClaudeProvider(api_key="test-key", base_url=server.url)


class TestClaudeContract(ProviderContract):
    prompt = "Say hello to the contract."

    @pytest.fixture
    def provider(self, server: FakeAnthropicServer) -> ClaudeProvider:
        return ClaudeProvider(api_key="test-key", base_url=server.url)

    @pytest.fixture
    def slow_provider(self, server: FakeAnthropicServer) -> ClaudeProvider:
        return ClaudeProvider(api_key="test-key", base_url=server.url, model="slow")


async def test_recorded_stream_is_normalized(server: FakeAnthropicServer, provider: ClaudeProvider) -> None:
    server.queue(recorded_stream())
    run, payloads = await run_once(provider, "Weather in SF?", max_turns=1)
    assert run.status is asm.RunStatus.COMPLETED
    text = "Okay, let's check the weather for San Francisco, CA:"
    call_id = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    not_run = "not run: the run reached max_turns=1"
    assert provider_payloads(payloads) == [
        ThinkingStreamed("User wants weather; I should call get_weather."),
        MessageStreamed("Okay, let"),
        MessageStreamed("'s check the weather for San Francisco, CA:"),
        ToolCallStarted(call_id, "get_weather", {"location": "San Francisco, CA", "unit": "fahrenheit"}),
        MessageReceived(text),
        TokenUsageUpdated(asm.TokenUsage(472, 89, 0, 0), "claude-sonnet-4-5-20250929"),
        TurnCompleted(1),
        ToolCallFailed(call_id, "get_weather", not_run),
    ]
    assert run.result is not None
    assert (run.output, run.result.stop_reason, run.result.model) == (text, "max_turns", "claude-sonnet-4-5-20250929")
    assert run.usage == asm.TokenUsage(472, 89)


async def test_the_request_carries_model_system_options(server: FakeAnthropicServer) -> None:
    provider = ClaudeProvider(api_key="test-key", base_url=server.url, model="claude-x", system_prompt="Be brief.")
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "salut"},
        {"role": "user", "content": "again"},
    ]
    run, _ = await run_once(provider, messages, temperature=0.5, max_tokens=77, sdk_opts={"top_k": 3})
    assert run.status is asm.RunStatus.COMPLETED, run.error
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["authorization"] == "Bearer test-key" or request.headers.get("x-api-key") == "test-key"
    assert request.body == {
        "model": "claude-x",
        "max_tokens": 77,
        "system": "Be brief.\n\nAnswer in French.",
        "temperature": 0.5,
        "top_k": 3,
        "stream": True,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "salut"},
            {"role": "user", "content": "again"},
        ],
    }


async def test_cache_usage_counts_as_input(server: FakeAnthropicServer, provider: ClaudeProvider) -> None:
    server.queue(text_stream("cached", input_tokens=5, output_tokens=7, cache_read=100, cache_write=20))
    run, payloads = await run_once(provider)
    usage = asm.TokenUsage(input_tokens=125, output_tokens=7, cache_read_tokens=100, cache_write_tokens=20)
    assert [p for p in payloads if isinstance(p, TokenUsageUpdated)] == [TokenUsageUpdated(usage, "claude-fake-1")]
    assert run.usage == usage


async def test_thinking_is_streamed_apart_from_text(server: FakeAnthropicServer, provider: ClaudeProvider) -> None:
    server.queue(text_stream("the answer", thinking="let me think"))
    run, payloads = await run_once(provider)
    assert provider_payloads(payloads)[:3] == [
        ThinkingStreamed("let me think"),
        MessageStreamed("the "),
        MessageStreamed("answer"),
    ]
    assert run.output == "the answer"


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(cuts=st.lists(st.integers(min_value=1, max_value=len(recorded_bytes()) - 1), max_size=12))
def test_arbitrary_splits_give_the_same_events(cuts: list[int]) -> None:
    """However the bytes are split into writes, the provider emits the same events."""

    async def main() -> list[Any]:
        with FakeAnthropicServer() as fake:
            fake.queue(recorded_stream(chunks=sorted(set(cuts))))
            provider = ClaudeProvider(api_key="k", base_url=fake.url, max_turns=1)
            return provider_payloads((await run_once(provider))[1])

    whole = trio.run(_whole)
    assert trio.run(main) == whole


async def _whole() -> list[Any]:
    with FakeAnthropicServer() as fake:
        fake.queue(recorded_stream())
        return provider_payloads((await run_once(ClaudeProvider(api_key="k", base_url=fake.url, max_turns=1)))[1])


# -- errors ------------------------------------------------------------------


FAILURES = {
    "429": Fault(
        error_reply(429, "rate_limit_error", "slow down", retry_after=12),
        "provider_rate_limited",
        True,
        "rate_limit_error",
    ),
    "529": Fault(error_reply(529, "overloaded_error", "Overloaded"), "provider_unavailable", True, "overloaded_error"),
    "500": Fault(error_reply(500, "api_error", "boom"), "provider_unavailable", True, "api_error"),
    "401": Fault(
        error_reply(401, "authentication_error", "bad key"),
        "provider_authentication_failed",
        False,
        "authentication_error",
    ),
    "403": Fault(
        error_reply(403, "permission_error", "no"), "provider_authentication_failed", False, "permission_error"
    ),
    "400": Fault(
        error_reply(400, "invalid_request_error", "max_tokens too big"),
        "provider_error",
        False,
        "invalid_request_error",
    ),
    "reset": Fault(reset_reply(), "provider_unavailable", True, "connection_error"),
}


class TestClaudeFaults(HTTPProviderFaultContract):
    provider_name = "claude"
    key_variables = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
    failures = FAILURES

    @pytest.fixture
    def make_provider(self, server: FakeAnthropicServer) -> Callable[..., ClaudeProvider]:
        return lambda **options: ClaudeProvider(**{"api_key": "test-key", "base_url": server.url, **options})

    @pytest.fixture
    def text_reply(self) -> Callable[[str], Reply]:
        return text_stream


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_bad_request_says_what_to_fix(server: FakeAnthropicServer, provider: ClaudeProvider) -> None:
    server.queue(error_reply(400, "invalid_request_error", "max_tokens: too large"))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert "max_tokens: too large" in run.error.message
    assert "fix the request" in run.error.message


async def test_mid_stream_error_event(server: FakeAnthropicServer, provider: ClaudeProvider) -> None:
    server.queue(recorded_stream("anthropic_messages_stream_error.sse"))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == ("provider_unavailable", True)
    assert run.error.provider_error is not None
    assert run.error.provider_error.kind == "overloaded_error"


@pytest.mark.parametrize(
    "body",
    [
        b"event: message_start\ndata: {not json\n\n",
        b'event: message_start\ndata: "a string"\n\n',
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 9, '
        b'"delta": {"type": "text_delta", "text": "x"}}\n\n',
        b'event: message_start\ndata: {"type": "message_start", "message": 3}\n\n',
    ],
    ids=["invalid-json", "not-an-object", "unknown-block", "wrong-shape"],
)
async def test_malformed_sse_fails_the_run(server: FakeAnthropicServer, provider: ClaudeProvider, body: bytes) -> None:
    server.queue(Reply(200, body, {"content-type": "text/event-stream"}))
    run, _ = await run_once(provider)
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
        ({"permission_mode": "sometimes"}, "permission_mode"),
        ({"temperature": 3.0}, "temperature"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"colour": "blue"}, "colour"),
        ({"tools": [42]}, "tools"),
    ],
)
async def test_bad_run_options_are_invalid_input(
    provider: ClaudeProvider, options: dict[str, Any], fragment: str
) -> None:
    run, _ = await run_once(provider, **options)
    assert run.error is not None
    assert run.error.code == "invalid_input"
    assert fragment in run.error.message


@pytest.mark.parametrize("config", [{"max_turns": 0}, {"nope": 1}, {"permission_mode": "x"}, {"sdk_opts": 3}], ids=str)
def test_bad_config_is_invalid_config(config: dict[str, Any]) -> None:
    with pytest.raises(asm.AsmError) as info:
        create_messages_provider(config)
    assert info.value.code == "invalid_config"


def test_the_plugin_registers_claude() -> None:
    registry = asm.load_plugins()
    assert "claude" in registry.names("providers")
    provider = registry.create("providers", "claude", {"model": "claude-y", "base_url": "http://127.0.0.1:1"})
    assert isinstance(provider, ClaudeProvider)
    assert provider.options.model == "claude-y"
    assert provider.capabilities() == asm.Capabilities(streaming=True, tools=True, thinking=True, authorizes_tools=True)


async def test_sdk_client_options_go_to_the_client(server: FakeAnthropicServer) -> None:
    """``max_retries`` from sdk_opts reaches the SDK client: one 529 is retried."""
    server.queue(error_reply(529, "overloaded_error", retry_after=0), text_stream("after retry"))
    provider = ClaudeProvider(api_key="k", base_url=server.url, sdk_opts={"max_retries": 1})
    run, _ = await run_once(provider)
    assert run.output == "after retry"
    assert len(server.requests) == 2


def test_options_are_frozen_values() -> None:
    provider = ClaudeProvider(model="m")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        provider.options.model = "other"  # type: ignore[misc]


def test_model_for_names_the_configured_model_before_the_run() -> None:
    # run_started.model and pricing know the model even when it comes from [providers.claude]
    provider = create_messages_provider({"model": "claude-opus-4-1"})
    assert provider.model_for(asm.RunInput.coerce("hi")) == "claude-opus-4-1"
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "claude-haiku-4-5"})) == "claude-haiku-4-5"
    assert ClaudeProvider().model_for(asm.RunInput.coerce("hi")) == "claude-sonnet-4-6"  # the default
