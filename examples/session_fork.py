"""Edit a message and regenerate: fork a session just before the message, run again in the fork.

A fork is a store primitive (``store.fork_session(session_id, at_seq=n)``): a new session whose
history is the first ``n`` events of the original, which stays untouched. The next run in the fork
is sent the fork's conversation (asm.continuity), so the model sees everything up to the edit and
the new message instead of the old one. Runs offline, on a SQLite file (asm-sqlalchemy).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

import asm
from asm.continuity import transcript
from asm.model import ForkPoint
from asm.ports import Emit


class Recalling:
    """Answers with the user messages it was sent before this one (the history it remembers)."""

    name = "recalling"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Emit) -> asm.RunResult:
        said = [e.content for e in run.history if e.kind == "message" and e.role == "user"]
        answer = f"{run.prompt!r}, after {said}"
        await emit(asm.events.MessageReceived(answer))
        return asm.RunResult(output=answer)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = {"store": "sqlite", "stores.sqlite.path": str(Path(tmp) / "asm.db")}
        async with asm.open_runtime(**config) as rt:
            manager = asm.SessionManager(rt.store, provider=Recalling())
            session = await manager.start_session(agent_id="chat")
            await manager.activate_session(session.id)
            for prompt in ("plan a trip to Rome", "for three days", "on a tight budget"):
                run = await manager.start_run(session.id, prompt)
                await manager.execute_run(run.id)

            # The user edits "for three days": fork just before that message was sent.
            events = (await rt.store.read_events(session.id)).events
            edited = next(e for e in events if isinstance(e.data, asm.events.MessageSent) and "three" in e.data.content)
            at = edited.seq - 2  # before that run's run_started and message_sent
            fork = await rt.store.fork_session(session.id, at_seq=at)
            print(f"forked {session.id} at seq {at}: {fork.id} (status {fork.status.value})")
            assert fork.forked_from == ForkPoint(session.id, at)

            await manager.activate_session(fork.id)
            run = await manager.start_run(fork.id, "for a whole week")
            regenerated = (await manager.execute_run(run.id)).raise_for_status()
            print("regenerated:", regenerated.output)
            assert regenerated.output == "'for a whole week', after ['plan a trip to Rome']"

            # The original is untouched; the fork has its own conversation.
            original = [(e.role, e.content) for e in (await transcript(rt.store, session.id)).messages]
            forked = [(e.role, e.content) for e in (await transcript(rt.store, fork.id)).messages]
            assert [c for r, c in original if r == "user"] == [
                "plan a trip to Rome",
                "for three days",
                "on a tight budget",
            ]
            assert [c for r, c in forked if r == "user"] == ["plan a trip to Rome", "for a whole week"]
            print("original:", [c for r, c in original if r == "user"])
            print("fork:    ", [c for r, c in forked if r == "user"])


if __name__ == "__main__":
    trio.run(main)
