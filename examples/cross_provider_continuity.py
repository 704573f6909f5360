"""One session, three providers: claude -> openai -> claude, with a tool call in the middle.

Each provider is sent the whole conversation in its own wire format (Anthropic tool_use /
tool_result blocks, OpenAI Responses function_call / function_call_output items): moving a
session is just ``execute_run(..., provider=...)``. Runs offline against the fake Anthropic
and OpenAI servers, which refuse a request the real APIs would refuse (a tool call without
its result, say). With real keys and no ``base_url``, nothing else changes.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from asm_claude.testing import FakeAnthropicServer, text_stream, tool_use_stream
from asm_openai.testing import FakeOpenAIServer, responses_text_stream

import asm


def get_weather(location: str) -> dict[str, Any]:
    """The current weather at a place."""
    return {"location": location, "temperature": 18, "sky": "clear"}


@asm.hookimpl
def asm_register_tools(register: Any) -> None:
    """This module is a plugin too: it registers the tool both providers offer by name."""
    register("get_weather", lambda config: asm.tools.coerce_tools([get_weather])[0])


async def main() -> None:
    registry = asm.load_plugins(extra=[sys.modules[__name__]])
    with FakeAnthropicServer() as claude_api, FakeOpenAIServer() as openai_api:
        offered = {"api_key": "k", "tools": ["get_weather"], "permission_mode": "accept_all"}
        providers = {
            "claude": {"base_url": claude_api.url, **offered},
            "openai": {"base_url": openai_api.base_url, **offered},
        }
        async with asm.open_runtime(store="memory", providers=providers, registry=registry) as rt:
            manager = rt.manager
            session = await manager.start_session(agent_id="travel")
            await manager.activate_session(session.id)

            async def turn(prompt: str, provider: str) -> asm.Run:
                run = await manager.start_run(session.id, prompt)
                done = await manager.execute_run(run.id, provider=provider)
                print(f"[{provider}] > {prompt}\n          {done.raise_for_status().output}")
                return done

            claude_api.queue(
                tool_use_stream([("toolu_01", "get_weather", {"location": "Lisbon"})], text="Let me look."),
                text_stream("Lisbon: 18 degrees and clear."),
            )
            await turn("What's the weather in Lisbon?", "claude")

            openai_api.queue(responses_text_stream("18 degrees is mild: a light jacket will do."))
            await turn("Do I need a coat?", "openai")
            items = openai_api.requests[-1].body["input"]
            print("openai was sent:", [item.get("type") or item["role"] for item in items])
            assert [item.get("type") or item["role"] for item in items] == [
                "user",
                "assistant",
                "function_call",
                "function_call_output",
                "assistant",
                "user",
            ]

            claude_api.queue(text_stream("Enjoy Lisbon!"))
            await turn("Thanks, bye.", "claude")
            messages = claude_api.requests[-1].body["messages"]
            print("claude was sent:", [m["role"] for m in messages])
            assert messages[1]["content"][1]["type"] == "tool_use"
            assert messages[2]["content"][0] == {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": messages[2]["content"][0]["content"],
            }
            assert messages[-2]["content"] == "18 degrees is mild: a light jacket will do."


if __name__ == "__main__":
    trio.run(main)
