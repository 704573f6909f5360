"""Durable sessions in a SQLite file: run, reopen, replay, query, follow.

With asm-sqlalchemy installed, asm's default store is a SQLite file in your
user data dir; this example points it at a temporary file instead
(``[stores.sqlite] path = ...`` in asm.toml does the same). Runs offline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from asm_sqlalchemy import SqlAlchemyStore

import asm


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "asm.db"
        config = {"store": "sqlite", "stores.sqlite.path": str(path)}

        # 1. Two runs in two runtimes: the second finds the first's session on disk.
        async with asm.open_runtime(provider="echo", **config) as rt:
            first = await rt.run_once("hello from sqlite", agent_id="demo")
        async with asm.open_runtime(provider="echo", **config) as rt:
            second = await rt.run_once("and hello again", agent_id="demo")
            assert isinstance(rt.store, SqlAlchemyStore)
            sessions = await rt.store.list_sessions(agent_id="demo")
        print(f"{path.name}: {len(sessions)} sessions for agent 'demo'")
        assert [s.id for s in sessions] == [second.session_id, first.session_id]

        async with SqlAlchemyStore(f"sqlite:///{path}") as store:
            # 2. Replay the first session from a cursor, page by page.
            cursor, text = 0, ""
            while True:
                page = await store.read_events(first.session_id, after=cursor, limit=2)
                text += "".join(e.data.delta for e in page.events if isinstance(e.data, asm.events.MessageStreamed))
                cursor = page.cursor
                if not page.has_more:
                    break
            print(f"replayed: {text!r} (cursor {cursor})")
            assert text == "hello from sqlite"

            # 3. Query across sessions: usage per agent, events by text.
            usage = await store.usage_summary(group_by="agent")
            print(f"usage: {usage['total']['total_tokens']} tokens over {usage['total']['runs']} runs")
            assert usage["total"]["runs"] == 2
            found = await store.search_events(types=["message_sent"], text="again")
            assert [e.session_id for e in found] == [second.session_id]

            # 4. Long-poll: a follower waits for the next event of a live session.
            manager = asm.SessionManager(store, provider=asm.EchoProvider())
            session = await manager.start_session(agent_id="followed")
            await manager.activate_session(session.id)
            latest = await store.latest_seq(session.id)
            async with trio.open_nursery() as nursery:
                seen: list[asm.Event] = []

                async def follow() -> None:
                    page = await store.wait_for_events(session.id, after=latest, timeout=10)
                    seen.extend(page.events)

                nursery.start_soon(follow)
                run = await manager.start_run(session.id, "wake up")
                await manager.execute_run(run.id)
            print(f"the follower woke with {seen[0].type.value} at seq {seen[0].seq}")
            assert seen and seen[0].seq == latest + 1

            # 5. Maintenance: health, vacuum.
            assert await store.health_check() == []
            await store.vacuum()
    print("ok")


if __name__ == "__main__":
    trio.run(main)
