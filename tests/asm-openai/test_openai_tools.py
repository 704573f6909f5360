"""The ``openai`` provider's tool loop, for both APIs, against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asm_openai import OpenAIProvider, create_provider
from asm_openai.testing import (
    FakeOpenAIServer,
    Reply,
    chat_text_stream,
    chat_tool_stream,
    recorded_stream,
    responses_text_stream,
    responses_tool_stream,
)

import asm
from asm.events import ApprovalDenied, ApprovalRequested, ToolCallCompleted, ToolCallFailed, ToolCallStarted


def get_weather(location: str) -> str:
    """The current weather at a place."""
    return f"18C and sunny in {location}"


SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture(params=["responses", "chat"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def tool_stream(api: str, calls: list[tuple[str, str, Any]]) -> Reply:
    return responses_tool_stream(calls) if api == "responses" else chat_tool_stream(calls)


def text_stream(api: str, text: str) -> Reply:
    return responses_text_stream(text) if api == "responses" else chat_text_stream(text)


async def run_once(provider: OpenAIProvider, prompt: str = "Weather?", **options: Any) -> tuple[asm.Run, list[Any]]:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider)
    run = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(run.session_id, run_id=run.id)).events
    return run, [e.data for e in events]


def of(payloads: list[Any], *kinds: type) -> list[Any]:
    return [p for p in payloads if isinstance(p, kinds)]


async def test_recorded_responses_round_trip(server: FakeOpenAIServer) -> None:
    server.queue(recorded_stream("openai_responses_stream.sse"), responses_text_stream("Sunny in Paris."))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, permission_mode="accept_all")
    run, payloads = await run_once(provider, "Weather in Paris?", tools=[get_weather])
    assert run.status is asm.RunStatus.COMPLETED, run.error
    assert run.output == "Sunny in Paris."
    assert of(payloads, ToolCallStarted, ToolCallCompleted) == [
        ToolCallStarted("call_12345xyz", "get_weather", {"location": "Paris, France"}),
        ToolCallCompleted("call_12345xyz", "get_weather", "18C and sunny in Paris, France"),
    ]
    first, second = (r.body for r in server.requests)
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "The current weather at a place.",
        "parameters": SCHEMA,
        "strict": False,
    }
    assert first["tools"] == second["tools"] == [tool]
    assert second["input"][0] == {"role": "user", "content": "Weather in Paris?"}
    assert [item.get("type") for item in second["input"][1:]] == ["message", "function_call", "function_call_output"]
    assert second["input"][2]["call_id"] == "call_12345xyz"
    assert second["input"][3] == {
        "type": "function_call_output",
        "call_id": "call_12345xyz",
        "output": "18C and sunny in Paris, France",
    }


async def test_recorded_chat_round_trip(server: FakeOpenAIServer) -> None:
    server.queue(recorded_stream("openai_chat_stream.sse"), chat_text_stream("Sunny in Paris."))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api="chat", permission_mode="accept_all")
    run, payloads = await run_once(provider, "Weather in Paris?", tools=[get_weather])
    assert run.output == "Sunny in Paris."
    call_id = "call_DdmO9pD3xa9XTPNJ32zg2hcA"
    assert of(payloads, ToolCallCompleted) == [ToolCallCompleted(call_id, "get_weather", "18C and sunny in Paris")]
    first, second = (r.body for r in server.requests)
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "description": "The current weather at a place.", "parameters": SCHEMA},
    }
    assert first["tools"] == [tool]
    assert second["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking now.",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny in Paris"},
    ]
    assert run.usage == asm.TokenUsage(82 + 10, 18 + 5)


async def test_failures_go_back_as_error_results(server: FakeOpenAIServer, api: str) -> None:
    def broken(location: str) -> str:
        raise ValueError(f"no data for {location}")

    server.queue(
        tool_stream(api, [("c1", "broken", {"location": "Oslo"}), ("c2", "nope", {}), ("c3", "broken", "{bad")]),
        text_stream(api, "sorry"),
    )
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api=api, permission_mode="accept_all")
    run, payloads = await run_once(provider, tools=[broken])
    assert run.output == "sorry"
    failed = of(payloads, ToolCallFailed)
    assert [f.tool_call_id for f in failed] == ["c1", "c2", "c3"]
    assert failed[0].error_message == "ValueError: no data for Oslo"
    body = server.requests[1].body
    if api == "responses":
        outputs = [item["output"] for item in body["input"] if item.get("type") == "function_call_output"]
    else:
        outputs = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    assert outputs[0] == "error: ValueError: no data for Oslo"
    assert outputs[1].startswith("error: no tool named 'nope'")
    assert "invalid JSON" in outputs[2]


async def test_default_permission_without_a_hook_denies(server: FakeOpenAIServer, api: str) -> None:
    server.queue(tool_stream(api, [("c1", "get_weather", {"location": "Rome"})]), text_stream(api, "ok"))
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api=api)
    _, payloads = await run_once(provider, tools=[get_weather])
    assert of(payloads, ApprovalRequested, ApprovalDenied, ToolCallFailed) == [
        ApprovalRequested("c1", "get_weather", {"location": "Rome"}),
        ApprovalDenied("c1", "get_weather", "no approval hook answered"),
        ToolCallFailed("c1", "get_weather", "permission to run tool 'get_weather' was denied"),
    ]


async def test_max_turns(server: FakeOpenAIServer, api: str) -> None:
    server.queue(*[tool_stream(api, [(f"c{i}", "get_weather", {"location": "Rome"})]) for i in range(3)])
    provider = OpenAIProvider(api_key="k", base_url=server.base_url, api=api, permission_mode="accept_all")
    run, _ = await run_once(provider, tools=[get_weather], max_turns=3)
    assert run.result is not None
    assert run.result.stop_reason == "max_turns"
    assert len(server.requests) == 3


class WeatherPlugin:
    @asm.hookimpl
    def asm_register_tools(self, register: Any) -> None:
        register("get_weather", lambda config: asm.Tool.from_function(get_weather))


def test_the_registry_building_the_provider_resolves_its_tools() -> None:
    """``tools`` named in the config come from the registry the provider is built from,
    so a tool an extra (in-process) plugin registers is found too."""
    registry = asm.load_plugins(extra=[WeatherPlugin()], env={"ASM_LOAD_PLUGINS": "asm-openai"})
    provider = registry.create("providers", "openai", {"api_key": "k", "tools": ["get_weather"]})
    assert [tool.name for tool in provider.tools] == ["get_weather"]


async def test_tools_registered_by_plugins(server: FakeOpenAIServer) -> None:
    registry = asm.load_plugins(entry_points=False, extra=[WeatherPlugin()])
    config = {"api_key": "k", "base_url": server.base_url, "tools": ["get_weather"], "permission_mode": "accept_all"}
    provider = create_provider(config, registry=registry)
    server.queue(responses_tool_stream([("c1", "get_weather", {"location": "Lima"})]), responses_text_stream("warm"))
    run, payloads = await run_once(provider)
    assert run.output == "warm"
    assert of(payloads, ToolCallCompleted) == [ToolCallCompleted("c1", "get_weather", "18C and sunny in Lima")]
