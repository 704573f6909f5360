"""The tool loop: model -> tools -> model, with Python functions as tools.

Tools are plain functions (sync or async) turned into ``asm.Tool`` values (a
name, a description, a JSON schema inferred from the signature). The provider
calls them when the model asks, sends the results back, and goes on until the
model stops or ``max_turns``. ``permission_mode`` decides whether a call may run:
``default`` asks the ``asm_approve_tool`` hook (here a plugin object), and
``accept_all`` / ``deny_all`` need nobody. Offline, against the fake servers.
"""

from __future__ import annotations

import trio
import trio.lowlevel
from asm_claude.messages import ClaudeProvider
from asm_claude.testing import FakeAnthropicServer, recorded_stream, text_stream, tool_use_stream
from asm_openai import OpenAIProvider
from asm_openai.testing import FakeOpenAIServer, responses_text_stream, responses_tool_stream

import asm
from asm.events import ApprovalRequested, ToolCallCompleted, ToolCallFailed, ToolCallStarted


def get_weather(location: str, unit: str = "celsius") -> dict[str, object]:
    """The current weather at a place."""
    return {"location": location, "temperature": 18 if unit == "celsius" else 64, "unit": unit}


async def convert(amount: float, currency: str) -> str:
    """Convert an amount of euros into another currency."""
    await trio.lowlevel.checkpoint()  # an async tool may do I/O
    if currency != "USD":
        raise ValueError(f"unknown currency {currency}")
    return f"{amount * 1.1:.2f} USD"


class OnlyParis:
    """An approval plugin: weather for Paris is fine, anything else is refused."""

    @asm.hookimpl
    def asm_approve_tool(self, request: ApprovalRequested, run: asm.Run) -> bool:
        return request.tool_input.get("location") == "Paris"


def show(event: asm.Event) -> None:
    if isinstance(event.data, ToolCallStarted | ToolCallCompleted | ToolCallFailed) or event.type.value in (
        "approval_granted",
        "approval_denied",
        "message_received",
    ):
        print(f"  {event.type.value}: {event.data}")


async def main() -> None:
    tools = [asm.Tool.from_function(get_weather), asm.Tool.from_function(convert)]
    print("schema of get_weather:", tools[0].input_schema)

    # 1. Claude, every tool call accepted. The recorded stream asks for get_weather.
    with FakeAnthropicServer() as server:
        server.queue(recorded_stream(), text_stream("It is 64F in San Francisco."))
        provider = ClaudeProvider(api_key="fake", base_url=server.url, permission_mode="accept_all", tools=tools)
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider)
        print("claude, accept_all:")
        run = await manager.run_once("Weather in SF?", on_event=show)
        assert run.output == "It is 64F in San Francisco."
        assert run.result is not None and run.result.metadata["turns"] == 2
        tool_result = server.requests[1].body["messages"][-1]["content"][0]
        assert tool_result["type"] == "tool_result" and '"temperature": 64' in tool_result["content"]

        # 2. A failing tool: its error goes back to the model as an error result.
        server.queue(tool_use_stream([("t1", "convert", {"amount": 10, "currency": "JPY"})]), text_stream("Sorry."))
        print("claude, a tool that raises:")
        run = await manager.run_once("10 EUR in JPY?", on_event=show)
        result = server.requests[-1].body["messages"][-1]["content"][0]
        assert result["is_error"] is True and "unknown currency JPY" in result["content"]

    # 3. OpenAI with permission_mode "default": the approval hook decides each call.
    with FakeOpenAIServer() as server:
        calls = [("c1", "get_weather", {"location": "Paris"}), ("c2", "get_weather", {"location": "Rome"})]
        server.queue(responses_tool_stream(calls), responses_text_stream("Paris: 18C. Rome: not allowed."))
        provider = OpenAIProvider(api_key="fake", base_url=server.base_url, tools=tools)
        plugins = asm.load_plugins(entry_points=False, extra=[OnlyParis()])
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider, plugins=plugins)
        print("openai, approval hook:")
        events: list[asm.Event] = []

        def collect(event: asm.Event) -> None:
            events.append(event)
            show(event)

        run = await manager.run_once("Weather in Paris and Rome?", on_event=collect)
        outcome = {
            e.data.tool_call_id: e.type.value for e in events if isinstance(e.data, ToolCallCompleted | ToolCallFailed)
        }
        assert outcome == {"c1": "tool_call_completed", "c2": "tool_call_failed"}, outcome
        assert run.output == "Paris: 18C. Rome: not allowed."


if __name__ == "__main__":
    trio.run(main)
