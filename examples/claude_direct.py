"""Provider ``claude`` (the Anthropic Messages API), offline against a fake server.

``asm_claude.testing.FakeAnthropicServer`` speaks the real wire format on
127.0.0.1 (here it replays a stream recorded from the API: thinking, text and a
tool call). Point ``base_url`` at the real API (or leave it unset) and set
``ANTHROPIC_API_KEY``, and nothing else changes.
"""

from __future__ import annotations

import trio
from asm_claude.testing import FakeAnthropicServer, error_reply, recorded_stream, text_stream

import asm
from asm.events import MessageStreamed, ThinkingStreamed


async def main() -> None:
    with FakeAnthropicServer() as server:
        config = {"base_url": server.url, "api_key": "fake-key", "model": "claude-sonnet-4-6", "max_turns": 1}

        # 1. Streaming: text and thinking arrive as separate event types.
        server.queue(text_stream("Paris is the capital of France.", thinking="An easy one."))
        streamed: list[str] = []

        def on_event(event: asm.Event) -> None:
            if isinstance(event.data, MessageStreamed):
                streamed.append(event.data.delta)
                print(event.data.delta, end="", flush=True)
            elif isinstance(event.data, ThinkingStreamed):
                print(f"[thinking] {event.data.delta}")

        async with asm.open_runtime(provider="claude", store="memory", providers={"claude": config}) as rt:
            run = await rt.run_once("What is the capital of France?", on_event=on_event)
            print()
            run.raise_for_status()
            assert run.result is not None
            print(f"stop reason: {run.result.stop_reason}, model: {run.result.model}, usage: {run.usage}")
            assert run.output == "Paris is the capital of France." == "".join(streamed)

            # 2. The recorded stream: the model asks for get_weather, which this
            #    run does not offer; with max_turns=1 the loop ends there.
            server.queue(recorded_stream())
            run = await rt.run_once("What is the weather in San Francisco?")
            types = [e.type.value for e in (await rt.store.read_events(run.session_id, run_id=run.id)).events]
            print("events:", ", ".join(types))
            assert "thinking_streamed" in types
            assert "tool_call_started" in types
            assert run.usage == asm.TokenUsage(472, 89)

            # 3. A rate limit fails the run with a retryable provider error that says when to retry.
            server.queue(error_reply(429, "rate_limit_error", "Too many requests", retry_after=12))
            run = await rt.run_once("again?")
            assert run.error is not None
            print(f"failed: [{run.error.code}] {run.error.message} (retryable={run.error.retryable})")
            assert (run.error.code, run.error.retryable, run.error.details["retry_after"]) == (
                "provider_rate_limited",
                True,
                12.0,
            )

        # What the provider sent: model, system prompt, messages.
        first = server.requests[0].body
        print("request:", {k: first[k] for k in ("model", "max_tokens", "messages")})
        assert first["model"] == "claude-sonnet-4-6"


if __name__ == "__main__":
    trio.run(main)
