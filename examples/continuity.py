"""A session that remembers: each run is sent the conversation so far (asm.continuity).

Runs offline, twice: with a tiny provider that answers from what it was sent (so you can see
the history arrive), then against the fake Anthropic server (asm_claude.testing), where the
second request carries the first exchange as Messages API messages. Point ``base_url`` at the
real API and set ``ANTHROPIC_API_KEY``, and nothing else changes.
"""

from __future__ import annotations

import trio
from asm_claude.testing import FakeAnthropicServer, text_stream

import asm
from asm.continuity import transcript
from asm.events import MessageReceived, RunStarted, TranscriptTruncated
from asm.ports import Emit


class Remembering:
    """Answers with what it remembers: the user messages of the history it was sent."""

    name = "remembering"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Emit) -> asm.RunResult:
        said = [e.content for e in run.history if e.kind == "message" and e.role == "user"]
        answer = f"you said before: {', '.join(said)}" if said else "this is our first exchange"
        await emit(MessageReceived(answer))  # the answer, as the transcript reads it
        return asm.RunResult(output=answer)


async def turn(manager: asm.SessionManager, session_id: str, prompt: str, **kwargs: object) -> asm.Run:
    run = await manager.start_run(session_id, prompt)
    return (await manager.execute_run(run.id, **kwargs)).raise_for_status()  # type: ignore[arg-type]


async def main() -> None:
    # 1. Multi-turn: the default continuation ("auto") replays the transcript to a provider
    #    that cannot resume a conversation of its own.
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=Remembering())
    session = await manager.start_session(agent_id="demo")
    await manager.activate_session(session.id)
    for prompt in ("my name is Ada", "I like trains", "what do you know?"):
        run = await turn(manager, session.id, prompt)
        print(f"> {prompt}\n  {run.output}")
    assert run.output == "you said before: my name is Ada, I like trains"
    started = (await manager.store.read_events(session.id, run_id=run.id, types=["run_started"])).events[0].data
    assert isinstance(started, RunStarted) and started.continuation == "replay"

    # The transcript is rebuilt from the event log at any time; continuation="none" forgets it.
    t = await transcript(manager.store, session.id)
    print("transcript:", [(e.role, e.content) for e in t.messages])
    assert [e.role for e in t.messages] == ["user", "assistant"] * 3
    run = await turn(manager, session.id, "and now?", continuation="none")
    assert run.output == "this is our first exchange"

    # A token budget keeps the latest turns and says what it dropped.
    tight = asm.SessionManager(manager.store, provider=Remembering(), continuation_max_tokens=12)
    run = await turn(tight, session.id, "last one")
    truncated = (await tight.store.read_events(session.id, run_id=run.id, types=["transcript_truncated"])).events
    assert isinstance(truncated[0].data, TranscriptTruncated)
    print(f"budget 12 tokens: dropped {truncated[0].data.dropped_turns} oldest turns; {run.output}")

    # 2. The same against the Messages API wire format.
    with FakeAnthropicServer() as server:
        claude = {"base_url": server.url, "api_key": "fake-key", "model": "claude-sonnet-4-5"}
        server.queue(text_stream("Nice to meet you, Ada."), text_stream("Your name is Ada."))
        async with asm.open_runtime(provider="claude", store="memory", providers={"claude": claude}) as rt:
            session = await rt.manager.start_session(agent_id="demo")
            await rt.manager.activate_session(session.id)
            await turn(rt.manager, session.id, "My name is Ada.")
            run = await turn(rt.manager, session.id, "What is my name?")
        sent = server.requests[-1].body["messages"]
        print("second request:", [(m["role"], m["content"]) for m in sent])
        assert sent == [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?"},
        ]
        assert run.output == "Your name is Ada."


if __name__ == "__main__":
    trio.run(main)
