"""Provider ``gemini`` against a fake server speaking the Gemini API's wire format
(``streamGenerateContent?alt=sse``), and the google-genai SDK itself against that server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asm_gemini import GeminiProvider, create_provider
from asm_gemini.testing import (
    FakeGeminiServer,
    Reply,
    chunks_reply,
    error_reply,
    function_call_stream,
    prompt_blocked_stream,
    reset_reply,
    safety_blocked_stream,
    stream_error,
    text_chunks,
    text_stream,
)

import asm
from asm.events import (
    MessageReceived,
    MessageStreamed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.testing import ProviderContract
from asm.testing.http import sse_reply
from asm.testing.http_contract import Fault, HTTPProviderFaultContract, provider_payloads, run_once


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer() as fake:
        yield fake


@pytest.fixture
def provider(server: FakeGeminiServer) -> GeminiProvider:
    return GeminiProvider(api_key="test-key", base_url=server.url)


class TestGeminiContract(ProviderContract):
    prompt = "Say hello to the contract."

    @pytest.fixture
    def provider(self, server: FakeGeminiServer) -> GeminiProvider:
        return GeminiProvider(api_key="test-key", base_url=server.url)

    @pytest.fixture
    def slow_provider(self, server: FakeGeminiServer) -> GeminiProvider:
        return GeminiProvider(api_key="test-key", base_url=server.url, model="slow")


# -- the stream ----------------------------------------------------------------------


async def test_text_thinking_and_usage(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    reply = text_stream(
        ["Hello", " there"], thinking="Greet back.", prompt_tokens=100, output_tokens=4, thoughts_tokens=30
    )
    server.queue(reply)
    run, payloads = await run_once(provider)
    usage = asm.TokenUsage(input_tokens=100, output_tokens=34)
    assert provider_payloads(payloads) == [
        ThinkingStreamed("Greet back."),
        MessageStreamed("Hello"),
        MessageStreamed(" there"),
        MessageReceived("Hello there"),
        TokenUsageUpdated(usage, "gemini-2.5-flash"),
        TurnCompleted(1),
    ]
    assert run.result is not None
    assert (run.output, run.result.stop_reason, run.result.model) == ("Hello there", "end_turn", "gemini-2.5-flash")
    assert run.result.metadata == {"turns": 1, "response_id": "resp_fake"}


async def test_cached_tokens_are_cache_reads(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    server.queue(text_stream("ok", prompt_tokens=1000, output_tokens=2, cached_tokens=800))
    run, _ = await run_once(provider)
    assert run.usage == asm.TokenUsage(input_tokens=1000, output_tokens=2, cache_read_tokens=800)


async def test_max_tokens_stop_reason(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    server.queue(text_stream("cut sho", finish="MAX_TOKENS"))
    run, _ = await run_once(provider)
    assert run.result is not None and run.result.stop_reason == "max_tokens"


async def test_the_request(server: FakeGeminiServer) -> None:
    provider = GeminiProvider(api_key="k", base_url=server.url, system_prompt="Be brief.", api_version="v1")
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    sdk_opts = {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
    sdk_opts["generationConfig"] = {"topP": 0.5}  # type: ignore[assignment]
    run, _ = await run_once(provider, messages, temperature=1.5, max_tokens=50, thinking_budget=256, sdk_opts=sdk_opts)
    assert run.status is asm.RunStatus.COMPLETED, run.error
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert request.headers["x-goog-api-key"] == "k"
    assert request.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [{"text": "again"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief.\n\nAnswer in French."}]},
        "safetySettings": sdk_opts["safetySettings"],
        "generationConfig": {
            "maxOutputTokens": 50,
            "temperature": 1.5,
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 256},
            "topP": 0.5,
        },
    }


@pytest.mark.parametrize(
    ("model", "thinking", "asks"),
    [
        ("gemini-2.0-flash", None, False),
        ("gemini-2.5-pro", None, True),
        ("gemini-3-pro", None, True),
        ("gemini-2.5-flash", False, False),
        ("gemini-2.0-flash", True, True),
    ],
)
async def test_thoughts_are_asked_for_where_the_model_thinks(
    server: FakeGeminiServer, model: str, thinking: bool | None, asks: bool
) -> None:
    provider = GeminiProvider(api_key="k", base_url=server.url, model=model, thinking=thinking)
    run, _ = await run_once(provider)
    assert run.status is asm.RunStatus.COMPLETED, run.error
    config = server.requests[0].body.get("generationConfig", {})
    assert ("thinkingConfig" in config) is asks


@pytest.mark.parametrize("size", [1, 7, 64])
async def test_any_split_gives_the_same_events(size: int) -> None:
    chunks = text_chunks(["one ", "two ", "three"], thinking="hmm", signature="sig")

    async def events(split: int | None) -> list[Any]:
        with FakeGeminiServer() as fake:
            reply = chunks_reply(chunks)
            offsets = tuple(range(split, len(reply.body), split)) if split else ()
            fake.queue(chunks_reply(chunks, chunks=offsets))
            return provider_payloads((await run_once(GeminiProvider(api_key="k", base_url=fake.url)))[1])

    assert await events(size) == await events(None)


async def test_crlf_separated_events(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    body = text_stream("a b").body.replace(b"\n", b"\r\n")
    server.queue(sse_reply(body))
    run, _ = await run_once(provider)
    assert run.output == "a b"


# -- the tool loop ---------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def test_the_tool_loop(server: FakeGeminiServer) -> None:
    server.queue(
        function_call_stream([("add", {"a": 2, "b": 3}), ("nope", {})], text="Let me add."),
        text_stream("five"),
    )
    provider = GeminiProvider(api_key="k", base_url=server.url, tools=[add], permission_mode="accept_all")
    run, payloads = await run_once(provider)
    assert run.output == "five"
    assert run.usage == asm.TokenUsage(30, 15)
    started = [p for p in payloads if isinstance(p, ToolCallStarted)]
    assert started == [
        ToolCallStarted("resp_fake_0", "add", {"a": 2, "b": 3}),
        ToolCallStarted("resp_fake_1", "nope", {}),
    ]
    assert [p for p in payloads if isinstance(p, ToolCallCompleted)] == [ToolCallCompleted("resp_fake_0", "add", 5)]
    (failed,) = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert failed.error_message.startswith("no tool named 'nope'")
    first, second = server.requests
    assert first.body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "add",
                    "description": "Add two numbers.",
                    "parametersJsonSchema": {
                        "type": "object",
                        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                        "required": ["a", "b"],
                    },
                }
            ]
        }
    ]
    contents = second.body["contents"]
    # The model's turn goes back with its thought signature; the results in the calls' order.
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Let me add."},
            {"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}, "thoughtSignature": "sig_fake"},
            {"functionCall": {"name": "nope", "args": {}}},
        ],
    }
    assert contents[2]["role"] == "user"
    assert contents[2]["parts"][0] == {"functionResponse": {"name": "add", "response": {"result": "5"}}}
    error = contents[2]["parts"][1]["functionResponse"]
    assert error["name"] == "nope" and "no tool named 'nope'" in error["response"]["error"]


async def test_call_ids_from_the_wire_go_back(server: FakeGeminiServer) -> None:
    server.queue(function_call_stream([("add", {"a": 1, "b": 1}, "fc-7")]), text_stream("two"))
    provider = GeminiProvider(api_key="k", base_url=server.url, tools=[add], permission_mode="accept_all")
    run, payloads = await run_once(provider)
    assert run.output == "two"
    assert [p.tool_call_id for p in payloads if isinstance(p, ToolCallStarted)] == ["fc-7"]
    part = server.requests[1].body["contents"][-1]["parts"][0]
    assert part == {"functionResponse": {"name": "add", "response": {"result": "2"}, "id": "fc-7"}}


async def test_a_non_object_argument_is_refused_back_to_the_model(server: FakeGeminiServer) -> None:
    server.queue(function_call_stream([("add", [1, 2])]), text_stream("sorry"))
    provider = GeminiProvider(api_key="k", base_url=server.url, tools=[add], permission_mode="accept_all")
    run, payloads = await run_once(provider)
    assert run.output == "sorry"
    (failed,) = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert "non-object input for 'add'" in failed.error_message


async def test_without_approval_a_tool_is_denied(server: FakeGeminiServer) -> None:
    server.queue(function_call_stream([("add", {"a": 1, "b": 1})]), text_stream("ok"))
    run, payloads = await run_once(GeminiProvider(api_key="k", base_url=server.url, tools=[add]))
    assert run.status is asm.RunStatus.COMPLETED
    failed = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert [f.error_message for f in failed] == ["permission to run tool 'add' was denied"]


async def test_max_turns_stops_the_loop(server: FakeGeminiServer) -> None:
    server.queue(function_call_stream([("add", {"a": 1, "b": 1})]))
    provider = GeminiProvider(api_key="k", base_url=server.url, tools=[add], permission_mode="accept_all")
    run, _ = await run_once(provider, max_turns=1)
    assert run.result is not None and run.result.stop_reason == "max_turns"
    assert len(server.requests) == 1


# -- errors ---------------------------------------------------------------------------

FAILURES = {
    "429": Fault(error_reply(429, "slow down", retry_delay=12), "provider_rate_limited", True, "resource_exhausted"),
    "429-per-day": Fault(
        error_reply(429, "quota", per_day=True), "provider_quota_exceeded", False, "resource_exhausted"
    ),
    "500": Fault(error_reply(500, "boom"), "provider_unavailable", True, "internal"),
    "503": Fault(error_reply(503, "overloaded"), "provider_unavailable", True, "unavailable"),
    "403": Fault(error_reply(403, "no"), "provider_authentication_failed", False, "permission_denied"),
    "400": Fault(error_reply(400, "bad input"), "provider_error", False, "invalid_argument"),
    "404-not-json": Fault(Reply(404, b"<html>no</html>"), "provider_error", False, "not found"),
    "reset": Fault(reset_reply(), "provider_unavailable", True, "connection_error"),
}


class TestGeminiFaults(HTTPProviderFaultContract):
    provider_name = "gemini"
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    key_header, key_format = "x-goog-api-key", "{}"
    failures = FAILURES
    rate_limit_message = "the Gemini API answered 429 (resource_exhausted): slow down; retry after 12s"
    missing_key_says = (
        "no Gemini API key: set the GEMINI_API_KEY environment variable or api_key in [providers.gemini] of asm.toml"
        " (GOOGLE_API_KEY is read too)"
    )
    missing_key_kind = "missing_api_key"
    cut_stream_says = "before its final event (a chunk with a finishReason)"
    refused_says = "lost the connection to the Gemini API ("

    @pytest.fixture
    def make_provider(self, server: FakeGeminiServer) -> Callable[..., GeminiProvider]:
        return lambda **options: GeminiProvider(**{"api_key": "test-key", "base_url": server.url, **options})

    @pytest.fixture
    def text_reply(self) -> Callable[[str], Reply]:
        return text_stream


async def test_429_retry_delay_from_the_body(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    server.queue(error_reply(429, "slow down", retry_delay=12.5))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert run.error.details["retry_after"] == 12.5
    assert run.error.message == "the Gemini API answered 429 (resource_exhausted): slow down; retry after 12.5s"


async def test_429_retry_after_header(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    server.queue(error_reply(429, "slow down", retry_after=3))
    run, _ = await run_once(provider)
    assert run.error is not None and run.error.details["retry_after"] == 3.0


async def test_an_unknown_model_says_so(server: FakeGeminiServer) -> None:
    run, _ = await run_once(GeminiProvider(api_key="k", base_url=server.url, model="gemnii-2.5-flash"))
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == ("provider_error", False)
    assert "answered 404 (not_found): models/gemnii-2.5-flash is not found" in run.error.message
    assert run.error.message.endswith("check the model name (e.g. gemini-2.5-flash), api_version and base_url")


async def test_an_invalid_key_is_an_authentication_failure(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
    }
    server.queue(error_reply(400, "API key not valid. Please pass a valid API key.", details=[info]))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert run.error.code == "provider_authentication_failed"
    assert "set a valid key in the GEMINI_API_KEY environment variable or api_key in [providers.gemini]" in (
        run.error.message
    )


async def test_google_api_key_is_read_too(server: FakeGeminiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-env")
    run, _ = await run_once(GeminiProvider(base_url=server.url))
    assert run.status is asm.RunStatus.COMPLETED, run.error
    assert server.requests[0].headers["x-goog-api-key"] == "from-env"


@pytest.mark.parametrize(
    ("reply", "blocked"),
    [
        (safety_blocked_stream("Here is how "), "the answer: SAFETY (dangerous_content)"),
        (prompt_blocked_stream(), "the prompt: SAFETY (harassment)"),
    ],
    ids=["answer", "prompt"],
)
async def test_a_safety_block_is_a_clear_failure(
    server: FakeGeminiServer, provider: GeminiProvider, reply: Reply, blocked: str
) -> None:
    server.queue(reply)
    run, _ = await run_once(provider)
    assert run.status is asm.RunStatus.FAILED
    assert run.error is not None and run.error.provider_error is not None
    assert (run.error.code, run.error.retryable, run.error.provider_error.kind) == (
        "provider_error",
        False,
        "safety_blocked",
    )
    assert run.error.message == f"Gemini blocked {blocked}; rephrase the prompt, or set safetySettings in sdk_opts"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(503, "provider_unavailable", True), (429, "provider_rate_limited", True), (400, "provider_error", False)],
)
async def test_an_error_chunk_mid_stream(
    server: FakeGeminiServer, provider: GeminiProvider, status: int, code: str, retryable: bool
) -> None:
    server.queue(stream_error(status, "later"))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == (code, retryable)
    assert run.error.message.startswith("the Gemini API failed mid-stream (")


@pytest.mark.parametrize(
    "body",
    [
        b"data: {not json\n\n",
        b'data: "a string"\n\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {}}]}}]}\n\n',
    ],
    ids=["invalid-json", "not-an-object", "missing-key"],
)
async def test_malformed_chunks_fail_the_run(server: FakeGeminiServer, provider: GeminiProvider, body: bytes) -> None:
    server.queue(sse_reply(body))
    run, _ = await run_once(provider)
    assert run.error is not None and run.error.provider_error is not None
    assert (run.error.code, run.error.provider_error.kind) == ("provider_error", "malformed_stream")


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"temperature": 2.5}, "temperature must be between 0 and 2, not 2.5"),
        ({"api_version": "v1beat"}, "not 'v1beat' (did you mean 'v1beta'?)"),
        ({"thinking_budget": -2}, "thinking_budget must be >= -1, not -2"),
        ({"modle": "x"}, "unknown option 'modle'"),
    ],
)
def test_bad_config_is_invalid_config(config: dict[str, Any], says: str) -> None:
    with pytest.raises(asm.AsmError) as caught:
        create_provider(config)
    assert caught.value.code == "invalid_config"
    assert says in caught.value.message


def test_the_factory_and_model_for() -> None:
    provider = create_provider({"model": "gemini-2.5-pro", "temperature": 1.5})
    assert (provider.name, provider.options.model, provider.options.temperature) == ("gemini", "gemini-2.5-pro", 1.5)
    assert provider.model_for(asm.RunInput.coerce("hi")) == "gemini-2.5-pro"
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "gemini-2.5-flash-lite"})) == (
        "gemini-2.5-flash-lite"
    )


def test_the_plugin_registers_gemini() -> None:
    registry = asm.load_plugins()
    assert registry.get("providers", "gemini").distribution == "asm-gemini"


# -- the SDK itself against the fake server ----------------------------------------------


def test_the_sdk_reads_the_fake_stream(server: FakeGeminiServer) -> None:
    from google import genai
    from google.genai import errors

    server.queue(
        text_stream(["Hi", " there"], thinking="hmm", thoughts_tokens=3),
        function_call_stream([("add", {"a": 1, "b": 2})]),
    )
    with genai.Client(api_key="k", http_options={"base_url": server.url}) as client:
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))
        thought = chunks[0].candidates[0].content.parts[0]
        assert (thought.thought, thought.text) == (True, "hmm")
        assert "".join(c.text or "" for c in chunks[1:]) == "Hi there"
        assert chunks[-1].candidates[0].finish_reason == "STOP"
        assert chunks[-1].usage_metadata.thoughts_token_count == 3
        (call,) = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="add"))
        assert call.function_calls[0].name == "add" and call.function_calls[0].args == {"a": 1, "b": 2}
        assert server.requests[0].path.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        server.queue(error_reply(429, "slow down", retry_delay=7))
        with pytest.raises(errors.ClientError) as caught:
            list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
        assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_the_command_line_prints_the_url() -> None:
    with subprocess.Popen([sys.executable, "-m", "asm_gemini.testing"], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("http://127.0.0.1:")
        finally:
            process.terminate()
            process.wait(timeout=10)
