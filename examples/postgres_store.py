"""Durable sessions on PostgreSQL: the ``sqlalchemy`` store, cross-process
long-poll (LISTEN/NOTIFY), recovery, retention.

Needs a PostgreSQL server; by default the one at 127.0.0.1:5432, database
``test``, user ``postgres`` (set ASM_EXAMPLE_PG to another libpq DSN). The
example works in a schema of its own and drops it at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import trio
from asm_sqlalchemy import SqlAlchemyStore

import asm

DSN = os.environ.get("ASM_EXAMPLE_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")

# Another process appends to a session; LISTEN/NOTIFY wakes our waiter.
WRITER = """
import sys, trio
from asm import Event
from asm.events import MessageStreamed
from asm_sqlalchemy import SqlAlchemyStore

async def main(url, session_id):
    async with SqlAlchemyStore(url) as store:
        await store.append_events([Event.new(MessageStreamed("from another process"), session_id=session_id)])

trio.run(main, sys.argv[1], sys.argv[2])
"""


async def main(url: str) -> None:
    # 1. From config, as an application would: store = "sqlalchemy" plus its url.
    config = {"store": "sqlalchemy", "stores.sqlalchemy.url": url}
    async with asm.open_runtime(provider="echo", **config) as rt:
        run = await rt.run_once("hello from postgres", agent_id="pg-demo")
    print(f"stored run {run.id}: {run.output!r}")

    async with SqlAlchemyStore(url) as store:
        assert (await store.get_run(run.id)).output == "hello from postgres"

        # 2. A waiter here, a writer in another process.
        latest = await store.latest_seq(run.session_id)
        async with trio.open_nursery() as nursery:
            woken: list[asm.Event] = []

            async def wait() -> None:
                page = await store.wait_for_events(run.session_id, after=latest, timeout=30)
                woken.extend(page.events)

            nursery.start_soon(wait)
            await trio.to_thread.run_sync(
                lambda: subprocess.run([sys.executable, "-c", WRITER, url, run.session_id], check=True)
            )
        print(f"woken by another process: {woken[0].data.delta!r}")  # type: ignore[attr-defined]
        assert woken and woken[0].seq == latest + 1

        # 3. Usage per provider and model, and maintenance.
        print(
            "usage by model:",
            [(g["key"], g["total_tokens"]) for g in (await store.usage_summary(group_by="model"))["groups"]],
        )
        assert await store.recover_interrupted_runs() == []  # nothing was left running
        assert await store.health_check() == []
        await store.vacuum()
        removed = await store.apply_retention(max_age_days=0)
        print(f"retention removed {removed}")
        assert removed["sessions"] == 1 and await store.latest_seq(run.session_id) == 0
    print("ok")


if __name__ == "__main__":
    schema = f"asm_example_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        info = psycopg.conninfo.conninfo_to_dict(DSN)
        password = f":{info['password']}" if info.get("password") else ""
        url = (
            f"postgresql+psycopg://{info.get('user', 'postgres')}{password}@{info.get('host', '127.0.0.1')}:"
            f"{info.get('port', 5432)}/{info['dbname']}?options=-csearch_path%3D{schema}"
        )
        trio.run(main, url)
    finally:
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
