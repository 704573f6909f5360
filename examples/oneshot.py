"""One prompt, one answer: the two shortest ways to run an agent with asm.

Runs offline: the ``echo`` provider streams the prompt back, and
``ScriptedProvider`` plays a fixed answer. Swap in ``provider="claude"`` (with
asm-claude installed) and nothing else changes.
"""

from __future__ import annotations

import trio

import asm


async def main() -> None:
    # 1. From configuration. open_runtime reads the config layers (asm.toml,
    #    ASM_* variables, then these keyword overrides), builds the store and the
    #    provider by plugin name, and closes everything when the block ends.
    async with asm.open_runtime(provider="echo") as rt:
        run = await rt.run_once("hello from asm")
    print(f"output: {run.output!r}")
    print(f"status: {run.status.value}")
    print(f"tokens: {run.usage.input_tokens} in, {run.usage.output_tokens} out")
    assert run.status is asm.RunStatus.COMPLETED
    assert run.output == "hello from asm"
    assert run.usage.total_tokens > 0

    # 2. With explicit objects: a SessionManager on a store, with a default
    #    provider. ScriptedProvider.from_text streams a fixed text in chunks and
    #    reports token usage, like a real model would.
    answer = "asm gives every provider one event stream."
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=asm.ScriptedProvider.from_text(answer))
    run = await manager.run_once("What does asm do?")
    # run_once returns the final Run whatever happened; raise_for_status()
    # raises the run's AsmError unless it completed (like httpx).
    run.raise_for_status()
    print(f"output: {run.output!r}")
    print(f"status: {run.status.value}, stop reason: {run.result.stop_reason if run.result else None}")
    print(f"tokens: {run.usage.total_tokens}")
    assert run.output == answer
    assert run.usage.output_tokens > 0

    # The run's session was completed for us, and every event is in the store.
    session = await manager.get_session(run.session_id)
    page = await manager.store.read_events(session.id)
    print(f"session {session.status.value}, {len(page.events)} events: {', '.join(e.type for e in page.events)}")
    assert session.status is asm.SessionStatus.COMPLETED
    assert page.events[-1].type is asm.EventType.SESSION_COMPLETED


if __name__ == "__main__":
    trio.run(main)
