"""The ``claude`` provider's tool loop: model -> tools -> model, against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.lowlevel
from asm_claude.messages import ClaudeProvider, create_messages_provider
from asm_claude.testing import FakeAnthropicServer, Reply, recorded_stream, sse, text_stream, tool_use_stream

import asm
from asm.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    MessageReceived,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)

CALL = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
SF = {"location": "San Francisco, CA", "unit": "fahrenheit"}


def get_weather(location: str, unit: str = "celsius") -> dict[str, Any]:
    """The current weather at a place."""
    return {"location": location, "temperature": 64, "unit": unit}


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        yield fake


def provider_for(server: FakeAnthropicServer, **options: Any) -> ClaudeProvider:
    return ClaudeProvider(api_key="test-key", base_url=server.url, **options)


async def run_once(
    provider: ClaudeProvider, prompt: str = "Weather in SF?", *, plugins: Any = None, **options: Any
) -> tuple[asm.Run, list[Any]]:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider, plugins=plugins)
    run = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(run.session_id, run_id=run.id)).events
    return run, [e.data for e in events]


def of(payloads: list[Any], *kinds: type) -> list[Any]:
    return [p for p in payloads if isinstance(p, kinds)]


async def test_a_tool_round_trip(server: FakeAnthropicServer) -> None:
    server.queue(recorded_stream(), text_stream("It is 64F in San Francisco."))
    provider = provider_for(server, permission_mode="accept_all", system_prompt="Use tools.")
    run, payloads = await run_once(provider, tools=[get_weather])
    assert run.status is asm.RunStatus.COMPLETED, run.error
    assert run.output == "It is 64F in San Francisco."
    assert run.result is not None
    assert (run.result.stop_reason, run.result.metadata["turns"]) == ("end_turn", 2)
    weather = {"location": "San Francisco, CA", "temperature": 64, "unit": "fahrenheit"}
    assert of(payloads, ToolCallStarted, ToolCallCompleted, ToolCallFailed) == [
        ToolCallStarted(CALL, "get_weather", SF),
        ToolCallCompleted(CALL, "get_weather", weather),
    ]
    assert of(payloads, MessageReceived)[-1] == MessageReceived("It is 64F in San Francisco.")
    assert run.usage == asm.TokenUsage(472 + 10, 89 + 5)

    first, second = (r.body for r in server.requests)
    schema = {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["location"],
    }
    tool_spec = {"name": "get_weather", "description": "The current weather at a place.", "input_schema": schema}
    assert first["tools"] == second["tools"] == [tool_spec]
    assert first["system"] == "Use tools."
    assert first["messages"] == [{"role": "user", "content": "Weather in SF?"}]
    assert second["messages"][:1] == first["messages"]
    assert second["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": "User wants weather; I should call get_weather.",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
            },
            {"type": "text", "text": "Okay, let's check the weather for San Francisco, CA:"},
            {"type": "tool_use", "id": CALL, "name": "get_weather", "input": SF},
        ],
    }
    assert second["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": CALL,
                "content": '{"location": "San Francisco, CA", "temperature": 64, "unit": "fahrenheit"}',
            }
        ],
    }


async def test_async_and_threaded_tools(server: FakeAnthropicServer) -> None:
    async def lookup(key: str) -> str:
        await trio.lowlevel.checkpoint()
        return f"value of {key}"

    def blocking(n: int) -> int:
        return n * 2

    tools = [asm.Tool.from_function(lookup), asm.Tool.from_function(blocking, thread=True)]
    server.queue(
        tool_use_stream([("t1", "lookup", {"key": "a"}), ("t2", "blocking", {"n": 21})]),
        text_stream("done"),
    )
    run, payloads = await run_once(provider_for(server, permission_mode="accept_all"), tools=tools)
    assert run.output == "done"
    assert of(payloads, ToolCallCompleted) == [
        ToolCallCompleted("t1", "lookup", "value of a"),
        ToolCallCompleted("t2", "blocking", 42),
    ]
    results = server.requests[1].body["messages"][-1]["content"]
    assert [(r["tool_use_id"], r["content"]) for r in results] == [("t1", "value of a"), ("t2", "42")]


async def test_tool_errors_go_back_to_the_model(server: FakeAnthropicServer) -> None:
    def explode(**_: Any) -> None:
        raise RuntimeError("the tool broke")

    server.queue(
        tool_use_stream([("t1", "explode", {}), ("t2", "missing", {}), ("t3", "explode", "{not json")]),
        text_stream("sorry"),
    )
    run, payloads = await run_once(provider_for(server, permission_mode="accept_all"), tools=[explode])
    assert run.status is asm.RunStatus.COMPLETED
    failed = of(payloads, ToolCallFailed)
    assert [(f.tool_call_id, f.tool_name) for f in failed] == [("t1", "explode"), ("t2", "missing"), ("t3", "explode")]
    assert failed[0].error_message == "RuntimeError: the tool broke"
    assert "no tool named 'missing'" in failed[1].error_message
    assert "invalid JSON" in failed[2].error_message
    results = server.requests[1].body["messages"][-1]["content"]
    assert all(r["is_error"] for r in results)
    assert results[0]["content"] == "RuntimeError: the tool broke"


async def test_default_permission_asks_and_no_answer_denies(server: FakeAnthropicServer) -> None:
    server.queue(tool_use_stream([("t1", "get_weather", {"location": "Paris"})]), text_stream("ok"))
    _run, payloads = await run_once(provider_for(server), tools=[get_weather])
    assert of(payloads, ApprovalRequested, ApprovalDenied, ToolCallFailed) == [
        ApprovalRequested("t1", "get_weather", {"location": "Paris"}),
        ApprovalDenied("t1", "get_weather", "no approval hook answered"),
        ToolCallFailed("t1", "get_weather", "permission to run tool 'get_weather' was denied"),
    ]
    (result,) = server.requests[1].body["messages"][-1]["content"]
    assert result["is_error"] is True


class Approver:
    @asm.hookimpl
    def asm_approve_tool(self, request: ApprovalRequested, run: asm.Run) -> bool:
        return request.tool_input.get("location") == "Paris"


async def test_the_approval_hook_decides(server: FakeAnthropicServer) -> None:
    server.queue(
        tool_use_stream([("t1", "get_weather", {"location": "Paris"}), ("t2", "get_weather", {"location": "Rome"})]),
        text_stream("ok"),
    )
    plugins = asm.load_plugins(entry_points=False, extra=[Approver()])
    _run, payloads = await run_once(provider_for(server), plugins=plugins, tools=[get_weather])
    assert of(payloads, ApprovalGranted, ApprovalDenied, ToolCallCompleted, ToolCallFailed) == [
        ApprovalGranted("t1", "get_weather"),
        ToolCallCompleted("t1", "get_weather", {"location": "Paris", "temperature": 64, "unit": "celsius"}),
        ApprovalDenied("t2", "get_weather", "denied by the approval hook"),
        ToolCallFailed("t2", "get_weather", "permission to run tool 'get_weather' was denied"),
    ]


async def test_deny_all_runs_nothing_and_asks_nobody(server: FakeAnthropicServer) -> None:
    calls: list[str] = []

    def spy(location: str) -> str:
        calls.append(location)
        return "x"

    server.queue(tool_use_stream([("t1", "spy", {"location": "Paris"})]), text_stream("ok"))
    _run, payloads = await run_once(provider_for(server), tools=[spy], permission_mode="deny_all")
    assert calls == []
    assert of(payloads, ApprovalRequested) == []
    assert of(payloads, ToolCallFailed) == [ToolCallFailed("t1", "spy", "permission to run tool 'spy' was denied")]


async def test_max_turns_ends_the_loop(server: FakeAnthropicServer) -> None:
    server.queue(*[tool_use_stream([(f"t{i}", "get_weather", {"location": "Oslo"})]) for i in range(3)])
    run, payloads = await run_once(provider_for(server, permission_mode="accept_all"), tools=[get_weather], max_turns=2)
    assert run.status is asm.RunStatus.COMPLETED
    assert run.result is not None
    assert run.result.stop_reason == "max_turns"
    assert len(server.requests) == 2
    assert of(payloads, ToolCallFailed) == [ToolCallFailed("t1", "get_weather", "not run: the run reached max_turns=2")]


class WeatherPlugin:
    @asm.hookimpl
    def asm_register_tools(self, register: Any) -> None:
        register("get_weather", lambda config: asm.Tool.from_function(get_weather))


async def test_tools_registered_by_plugins(server: FakeAnthropicServer) -> None:
    registry = asm.load_plugins(entry_points=False, extra=[WeatherPlugin()])
    config = {"api_key": "k", "base_url": server.url, "tools": ["get_weather"], "permission_mode": "accept_all"}
    provider = create_messages_provider(config, registry=registry)
    server.queue(tool_use_stream([("t1", "get_weather", {"location": "Lima"})]), text_stream("warm"))
    run, payloads = await run_once(provider)
    assert run.output == "warm"
    assert [t["name"] for t in server.requests[0].body["tools"]] == ["get_weather"]
    assert of(payloads, ToolCallCompleted)[0].tool_output["location"] == "Lima"


def test_the_registry_building_the_provider_resolves_its_tools() -> None:
    """``tools`` named in the config come from the registry the provider is built from,
    so a tool an extra (in-process) plugin registers is found too."""
    registry = asm.load_plugins(extra=[WeatherPlugin()], env={"ASM_LOAD_PLUGINS": "asm-claude"})
    provider = registry.create("providers", "claude", {"api_key": "k", "tools": ["get_weather"]})
    assert [tool.name for tool in provider.tools] == ["get_weather"]


def test_unknown_registered_tool_is_an_error() -> None:
    registry = asm.load_plugins(entry_points=False)
    with pytest.raises(asm.AsmError) as info:
        create_messages_provider({"tools": ["nope"]}, registry=registry)
    assert info.value.code == "plugin_not_found"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: asm.Tool("bad name!", "", {"type": "object"}, print), "validation_error"),
        (lambda: asm.Tool("t", "", {"type": "array"}, print), "validation_error"),
        (lambda: asm.Tool("t", "", {"type": "object"}, 42), "validation_error"),
    ],
    ids=["name", "schema", "function"],
)
def test_bad_tools_are_refused(make: Any, code: str) -> None:
    with pytest.raises(asm.AsmError) as info:
        make()
    assert info.value.code == code


async def test_duplicate_tool_names_are_refused(server: FakeAnthropicServer) -> None:
    run, _ = await run_once(provider_for(server), tools=[get_weather, asm.Tool.from_function(get_weather)])
    assert run.error is not None
    assert run.error.code == "invalid_input"
    assert "get_weather" in run.error.message


async def test_run_option_tools_picks_by_name(server: FakeAnthropicServer) -> None:
    def other() -> str:
        """Another tool."""
        return "x"

    provider = ClaudeProvider(api_key="k", base_url=server.url, tools=[get_weather, other])
    run, _ = await run_once(provider, tools=["get_weather"])
    assert run.status is asm.RunStatus.COMPLETED
    assert [t["name"] for t in server.requests[0].body["tools"]] == ["get_weather"]
    run, _ = await run_once(provider)
    assert [t["name"] for t in server.requests[1].body["tools"]] == ["get_weather", "other"]
    run, _ = await run_once(provider, tools=["nope"])
    assert run.error is not None
    assert run.error.code == "invalid_input"
    assert "'nope'" in run.error.message
    assert "get_weather, other" in run.error.message


async def test_server_tool_blocks_are_sent_back_whole(server: FakeAnthropicServer) -> None:
    """Blocks the API runs itself (server tools) and redacted thinking go back
    as they came, a server tool's streamed input assembled; they are not asm tool calls."""
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "redacted_thinking", "data": "xyz"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"query": "x"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"location": "Oslo"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    server.queue(Reply(200, sse(events), {"content-type": "text/event-stream"}), text_stream("done"))
    run, payloads = await run_once(provider_for(server, permission_mode="accept_all"), tools=[get_weather])
    assert run.output == "done"
    assert [p.tool_call_id for p in of(payloads, ToolCallStarted)] == ["t1"]
    assert server.requests[1].body["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": "xyz"},
        {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"location": "Oslo"}},
    ]


async def test_a_paused_turn_is_continued(server: FakeAnthropicServer) -> None:
    server.queue(text_stream("Searching...", stop_reason="pause_turn"), text_stream("Found it."))
    run, _ = await run_once(provider_for(server))
    assert (run.output, len(server.requests)) == ("Found it.", 2)
    assert server.requests[1].body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Searching..."}],
    }
