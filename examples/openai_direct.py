"""Provider ``openai``, offline against a fake server: the Responses API, then
Chat Completions (``api = "chat"``), which any OpenAI-compatible server speaks.

``asm_openai.testing.FakeOpenAIServer`` speaks both wire formats on 127.0.0.1.
For a local model server (vLLM, Ollama, llama.cpp, ...) set ``base_url`` to its
``.../v1`` URL and ``api = "chat"``; for OpenAI itself set ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import trio
from asm_openai.testing import FakeOpenAIServer, recorded_stream, responses_text_stream

import asm
from asm.events import MessageStreamed, TokenUsageUpdated


async def main() -> None:
    with FakeOpenAIServer() as server:
        base = {"base_url": server.base_url, "api_key": "fake-key", "max_turns": 1}

        # 1. The Responses API (the default api).
        server.queue(responses_text_stream("Hello from the Responses API.", cached=4))
        async with asm.open_runtime(provider="openai", store="memory", providers={"openai": base}) as rt:
            run = await rt.run_once("Say hello.", options={"system_prompt": "Be brief."})
            run.raise_for_status()
            print(f"responses: {run.output!r} usage={run.usage}")
            assert run.output == "Hello from the Responses API."
            assert run.usage.cache_read_tokens == 4
            request = server.requests[-1]
            assert (request.path, request.body["instructions"]) == ("/v1/responses", "Be brief.")

        # 2. Chat Completions, e.g. for a local OpenAI-compatible server.
        chat = {**base, "api": "chat", "model": "llama-3.1-8b-instruct"}
        server.queue(recorded_stream("openai_chat_stream.sse"))
        events: list[asm.Event] = []
        async with asm.open_runtime(provider="openai", store="memory", providers={"openai": chat}) as rt:
            run = await rt.run_once("Weather in Paris?", on_event=events.append)
        text = "".join(e.data.delta for e in events if isinstance(e.data, MessageStreamed))
        usage = [e.data.usage for e in events if isinstance(e.data, TokenUsageUpdated)]
        print(f"chat: streamed {text!r}, usage {usage}, model {run.result.model if run.result else None}")
        assert text == run.output == "Checking now."
        request = server.requests[-1]
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == "llama-3.1-8b-instruct"
        assert request.body["stream_options"] == {"include_usage": True}


if __name__ == "__main__":
    trio.run(main)
