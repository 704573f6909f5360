"""The HTTP provider kit (asm.providers.http), through ``lyre``: the imaginary service's provider of
examples/provider_in_an_afternoon.py (docs/writing-plugins.md), against its fake server on
asm.testing.http. The provider contract suite runs on it (TestLyreContract), then the faults."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import asm
from asm.events import ToolCallFailed, ToolCallStarted
from asm.providers import http as kit
from asm.testing.http import Reply, reset_reply, sse
from asm.testing.http_contract import Fault, HTTPProviderFaultContract, run_once

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from provider_in_an_afternoon import (
    FakeLyreServer,
    LyreProvider,
    TestLyreContract,
    create_provider,
    lyre_error,
    lyre_stream,
)

__all__ = ["TestLyreContract"]  # the provider contract suite, collected here too


@pytest.fixture
def server() -> Iterator[FakeLyreServer]:
    fake = FakeLyreServer()
    with fake:
        yield fake


@pytest.fixture
def provider(server: FakeLyreServer) -> LyreProvider:
    return LyreProvider(api_key="k", base_url=server.url)


def test_the_kit_exports() -> None:
    assert set(kit.__all__) == {
        "Client",
        "ErrorRule",
        "HTTPClient",
        "HTTPFailure",
        "HTTPOptions",
        "HTTPProtocolError",
        "HTTPProvider",
        "HTTPResponse",
        "HTTPStatusError",
        "InvalidURL",
        "RunContext",
        "Service",
        "StainlessProvider",
        "StainlessSDK",
        "StatusRule",
        "ToolCall",
        "Turn",
        "Wire",
        "check_options",
        "client_rules",
        "option",
        "parse_tool_input",
        "sdk_request",
        "split_sdk_opts",
        "stainless_stream",
    }
    for name in kit.__all__:
        assert getattr(kit, name).__module__.startswith("asm.providers.http"), name


# -- HTTP failures -----------------------------------------------------------


FAILURES = {
    "429": Fault(
        lyre_error(429, "rate_limited", "slow down", retry_after=7), "provider_rate_limited", True, "rate_limited"
    ),
    "500": Fault(lyre_error(500, "internal", "boom"), "provider_unavailable", True, "internal"),
    "503": Fault(lyre_error(503, "overloaded", "busy"), "provider_unavailable", True, "overloaded"),
    "401": Fault(lyre_error(401, "bad_key", "who are you"), "provider_authentication_failed", False, "bad_key"),
    "402": Fault(lyre_error(402, "out_of_credit", "top up"), "provider_quota_exceeded", False, "out_of_credit"),
    "400": Fault(lyre_error(400, "bad_request", "max_tokens too big"), "provider_error", False, "bad_request"),
    "404-not-json": Fault(Reply(404, b"<html>no</html>"), "provider_error", False, "http_404"),
    "reset": Fault(reset_reply(), "provider_unavailable", True, "connection_error"),
}


class TestLyreFaults(HTTPProviderFaultContract):
    provider_name = "lyre"
    key_variables = ("LYRE_API_KEY",)
    failures = FAILURES
    retry_after = 7.0
    rate_limit_message = "the Lyre API answered 429 (rate_limited): slow down; retry after 7s"
    missing_key_kind = "missing_api_key"
    cut_stream_says = "before its final event (end)"
    refused_says = "lost the connection to the Lyre API ("

    @pytest.fixture
    def make_provider(self, server: FakeLyreServer) -> Callable[..., LyreProvider]:
        return lambda **options: LyreProvider(**{"api_key": "k", "base_url": server.url, **options})

    @pytest.fixture
    def text_reply(self) -> Callable[[str], Reply]:
        return lyre_stream


async def test_429_names_the_request(server: FakeLyreServer, provider: LyreProvider) -> None:
    server.queue(FAILURES["429"].reply)
    run, _ = await run_once(provider)
    assert run.error is not None
    assert run.error.details["request_id"] == "req_fake"


async def test_a_bad_key_says_where_keys_go(server: FakeLyreServer, provider: LyreProvider) -> None:
    server.queue(lyre_error(401, "bad_key", "who are you"))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert "set a valid key in the LYRE_API_KEY environment variable or api_key in [providers.lyre]" in (
        run.error.message
    )


async def test_a_mid_stream_error_event(server: FakeLyreServer, provider: LyreProvider) -> None:
    events = [
        (None, {"type": "begin", "id": "x", "model": "m"}),
        (None, {"type": "error", "code": "overloaded", "message": "later"}),
    ]
    server.queue(Reply(200, sse(events), {"content-type": "text/event-stream"}))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert (run.error.code, run.error.retryable) == ("provider_unavailable", True)
    assert run.error.message == "the Lyre API failed mid-stream (overloaded): later"


@pytest.mark.parametrize(
    "body",
    [
        b"data: {not json\n\n",
        b'data: "a string"\n\n',
        b'data: {"type": "text"}\n\n',
        b'data: {"type": "end", "usage": 3}\n\n',
    ],
    ids=["invalid-json", "not-an-object", "missing-key", "wrong-shape"],
)
async def test_malformed_events_fail_the_run(server: FakeLyreServer, provider: LyreProvider, body: bytes) -> None:
    server.queue(Reply(200, body, {"content-type": "text/event-stream"}))
    run, _ = await run_once(provider)
    assert run.error is not None
    assert run.error.code == "provider_error"
    assert run.error.provider_error is not None and run.error.provider_error.kind == "malformed_stream"
    assert run.error.message.startswith("the Lyre stream is malformed: event ")


# -- the tool loop -------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def test_the_tool_loop_sends_results_back(server: FakeLyreServer) -> None:
    server.queue(lyre_stream(calls=[("c1", "add", {"a": 2, "b": 3}), ("c2", "nope", {})]), lyre_stream("five"))
    provider = LyreProvider(api_key="k", base_url=server.url, tools=[add], permission_mode="accept_all")
    run, _payloads = await run_once(provider)
    assert run.output == "five"
    assert run.result is not None and run.result.metadata == {"turns": 2, "response_id": "ly_1"}
    assert run.usage == asm.TokenUsage(24, 4 + 3)
    messages = server.requests[1].body["messages"]
    assert messages[-3]["calls"] == [
        {"id": "c1", "name": "add", "input": {"a": 2, "b": 3}},
        {"id": "c2", "name": "nope", "input": {}},
    ]
    assert messages[-2] == {"role": "tool", "call_id": "c1", "text": "5", "error": False}
    assert messages[-1]["error"] is True and "no tool named 'nope'" in messages[-1]["text"]
    assert server.requests[0].body["tools"][0]["name"] == "add"


async def test_without_approval_a_tool_is_denied(server: FakeLyreServer) -> None:
    server.queue(lyre_stream(calls=[("c1", "add", {"a": 1, "b": 1})]), lyre_stream("ok"))
    run, payloads = await run_once(LyreProvider(api_key="k", base_url=server.url, tools=[add]))
    assert run.status is asm.RunStatus.COMPLETED
    failed = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert [f.error_message for f in failed] == ["permission to run tool 'add' was denied"]


async def test_max_turns_stops_the_loop(server: FakeLyreServer) -> None:
    server.queue(lyre_stream(calls=[("c1", "add", {"a": 1, "b": 1})]))
    provider = LyreProvider(api_key="k", base_url=server.url, tools=[add], permission_mode="accept_all")
    run, payloads = await run_once(provider, max_turns=1)
    assert run.result is not None and run.result.stop_reason == "max_turns"
    assert [type(p) for p in payloads if isinstance(p, ToolCallStarted | ToolCallFailed)] == [
        ToolCallStarted,
        ToolCallFailed,
    ]
    assert len(server.requests) == 1


# -- options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"max_turns": 0}, "max_turns must be >= 1, not 0"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2, not 2.5"),
        ({"permission_mode": "acept_all"}, "not 'acept_all' (did you mean 'accept_all'?)"),
        ({"model": ""}, "model must not be empty"),
        ({"modle": "x"}, "unknown option 'modle'"),
        ({"max_tokens": "many"}, "max_tokens"),
    ],
)
def test_bad_config_is_invalid_config(config: dict[str, Any], says: str) -> None:
    with pytest.raises(asm.AsmError) as caught:
        create_provider(config)
    assert caught.value.code == "invalid_config"
    assert says in caught.value.message


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"max_turns": 0}, "invalid lyre run options: max_turns must be >= 1, not 0"),
        ({"api_key": "x"}, "unknown lyre run option 'api_key'"),
        ({"max_turn": 3}, "did you mean 'max_turns'?"),
    ],
)
async def test_bad_run_options_are_invalid_input(provider: LyreProvider, options: dict[str, Any], says: str) -> None:
    run, _ = await run_once(provider, **options)
    assert run.error is not None
    assert run.error.code == "invalid_input"
    assert says in run.error.message


def test_options_declare_their_checks() -> None:
    provider = create_provider({"model": "lyre-2", "temperature": 1.5})
    assert (provider.options.model, provider.options.temperature) == ("lyre-2", 1.5)
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "lyre-3"})) == "lyre-3"
    assert provider.capabilities() == asm.Capabilities(streaming=True, tools=True, thinking=True, authorizes_tools=True)


# -- the pieces on their own ----------------------------------------------------------


class _FakeSDK:
    class BaseError(Exception):
        pass

    class APIStatusError(BaseError):
        status_code = 529
        body = "not a dict"
        message = "busy"
        response = SimpleNamespace(headers={"retry-after": "2", "request-id": "req_1"})

    class APITimeoutError(BaseError):
        pass

    class APIConnectionError(BaseError):
        pass


class _FakeTransport:
    class TransportError(Exception):
        pass

    class TimeoutException(TransportError):
        pass

    class UnsupportedProtocol(TransportError):
        pass

    class InvalidURL(Exception):
        pass


def _stainless_service() -> kit.Service:
    sdk = kit.StainlessSDK(_FakeSDK, object, _FakeSDK.BaseError, _FakeTransport)
    rules = sdk.rules(request_id="request-id", read_error=lambda status, body: (None, None, False))
    return kit.Service("fake", "Fake", "FAKE_KEY", sdk="fakesdk", rules=rules)


def _mapped(service: kit.Service, exc: Exception) -> asm.AsmError:
    with pytest.raises(asm.AsmError) as caught, service.mapped_errors():
        raise exc
    return caught.value


def _caused(exc: Exception, cause: Exception) -> Exception:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "code", "kind", "message"),
    [
        (
            _FakeSDK.APIStatusError(),
            "provider_unavailable",
            "http_529",
            "the Fake API answered 529 (http_529): busy; retry after 2s",
        ),
        (
            _FakeSDK.APITimeoutError("slow"),
            "provider_timeout",
            "timeout",
            "the Fake API timed out (slow); retry the run",
        ),
        (
            _caused(_FakeSDK.APIConnectionError(), _FakeTransport.UnsupportedProtocol("gopher")),
            "provider_error",
            "invalid_base_url",
            "the Fake base URL is invalid (gopher); fix base_url in [providers.fake]",
        ),
        (
            _caused(_FakeSDK.APIConnectionError(), ConnectionResetError("reset")),
            "provider_unavailable",
            "connection_error",
            "lost the connection to the Fake API (ConnectionResetError: reset); retry the run",
        ),
        (_FakeSDK.BaseError("odd"), "provider_error", "sdk_error", "the fakesdk SDK failed: odd"),
    ],
    ids=["status", "timeout", "bad-url", "connection", "other"],
)
def test_the_stainless_table(exc: Exception, code: str, kind: str, message: str) -> None:
    error = _mapped(_stainless_service(), exc)
    assert (error.code, error.message) == (code, message)
    failure = error.details["provider_error"]
    assert (failure.provider, failure.kind) == ("fake", kind)


def test_exceptions_outside_the_table_pass_through() -> None:
    with pytest.raises(KeyError), _stainless_service().mapped_errors():
        raise KeyError("mine")


def test_sdk_opts_and_requests() -> None:
    assert kit.split_sdk_opts({"max_retries": 2, "top_p": 1}, frozenset({"max_retries"})) == (
        {"max_retries": 2},
        {"top_p": 1},
    )
    assert kit.sdk_request({"model": "m", "extra_body": {"a": 1}}, {"b": 2}, frozenset({"model", "extra_body"})) == {
        "model": "m",
        "extra_body": {"b": 2, "a": 1},
    }
    assert kit.sdk_request({"model": "m"}, {}, frozenset({"model"})) == {"model": "m"}


def test_tool_input_parsing() -> None:
    assert kit.parse_tool_input("t", "", {"x": 1}) == ({"x": 1}, None)
    assert kit.parse_tool_input("t", "{bad") == ({}, "the model sent invalid JSON as the input of 't': '{bad'")


class _Pieces:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)


async def test_the_client_reads_chunked_bodies() -> None:
    from asm.providers.http._client import _dechunk

    chunks = _Pieces(b"5\r\nhel", b"lo\r\n3;x=1\r\n wo\r\n", b"0\r\n\r\n", b"junk")
    async with contextlib.aclosing(_dechunk(chunks)) as pieces:
        assert b"".join([piece async for piece in pieces]) == b"hello wo"
    with pytest.raises(kit.HTTPProtocolError):
        async with contextlib.aclosing(_dechunk(_Pieces(b"zz\r\n"))) as pieces:
            [piece async for piece in pieces]


async def test_a_turn_without_a_mapping_says_so() -> None:
    turn = kit.Turn(kit.Service("x", "X", "X_KEY"))
    with pytest.raises(NotImplementedError):
        await turn.event("", "{}", SimpleNamespace())
