"""A SessionServer: a FIFO queue of runs for one session, slots, cancel, drain, status.

Limits shared by several servers: examples/session_concurrency.py.
"""

from __future__ import annotations

import trio
import trio.lowlevel

import asm
from asm.providers.scripted import Delay, Stall


async def main() -> None:
    store = asm.InMemorySessionStore()
    provider = asm.ScriptedProvider(["thinking", Delay(0.01), " done"])

    async with asm.open_session_server(store, provider, max_concurrent_runs=2, max_queued_runs=10) as server:
        run_ids = [await server.submit(f"task {i}") for i in range(5)]
        status = server.status()
        print(f"after submitting: {len(status.running)} running, {len(status.queued)} queued")
        await server.drain()  # stop accepting, let everything finish
        status = server.status()
        print(f"drained: {status.completed} completed, {status.free_slots} free slots")
        assert status.completed == 5
        for run_id in run_ids:
            assert (await server.wait(run_id)).output == "thinking done"
        try:
            await server.submit("too late")
        except asm.AsmError as exc:
            print("submit after drain:", exc.code)
            assert exc.code == "server_draining"

    # Runs start in submission order: their run_started events are stored in that order.
    started = await store.read_events(server.session_id, types=["run_started"])
    assert [e.run_id for e in started.events] == run_ids

    # Cancel a queued run and a running one; a full queue refuses (retryable).
    stalling = asm.ScriptedProvider([Stall()], name="stall")
    async with asm.open_session_server(store, stalling, max_concurrent_runs=1, max_queued_runs=1) as server:
        running = await server.submit("runs forever")
        queued = await server.submit("waits")
        try:
            await server.submit("one too many")
        except asm.AsmError as exc:
            print(f"full queue: {exc.code} (retryable={exc.retryable})")
            assert exc.code == "queue_full" and exc.retryable
        print("cancel queued:", (await server.cancel(queued)).status.value)
        print("cancel running:", (await server.cancel(running, reason="enough")).status.value)


if __name__ == "__main__":
    trio.run(main)
