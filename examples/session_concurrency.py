"""Concurrency limits shared by every SessionServer of a runtime, fair under contention.

A runtime's `limiter` comes from the config keys `max_parallel_sessions` and
`max_parallel_runs`; every server opened on the runtime shares it. Waiters are served
first come, first served, so a busy server cannot starve another.

Run: python examples/session_concurrency.py (offline).
"""

from __future__ import annotations

import trio

import asm
from asm.providers.scripted import Delay, ScriptedProvider


async def main() -> None:
    started: list[str] = []

    def on_event(event: asm.Event) -> None:
        if event.type is asm.EventType.MESSAGE_SENT:
            started.append(event.data.content)  # type: ignore[attr-defined]

    # At most one run at a time in the whole runtime, whatever each server allows itself.
    async with asm.open_runtime(store="memory", max_parallel_runs=1, on_event=on_event) as runtime:
        provider = ScriptedProvider(["working", Delay(0.02), " done"])
        async with (
            asm.open_session_server(runtime, provider, max_concurrent_runs=3) as a,
            asm.open_session_server(runtime, provider, max_concurrent_runs=3) as b,
            asm.open_session_server(runtime, provider, max_concurrent_runs=3) as c,
        ):
            # Submitted in this order across three servers: they start in exactly this order.
            order = [(a, "a1"), (b, "b1"), (c, "c1"), (a, "a2"), (b, "b2")]
            ids = [(server, await server.submit(name)) for server, name in order]
            await trio.sleep(0.01)
            limits = runtime.limiter.statistics()
            print(f"running {limits.active_runs} of at most {limits.max_parallel_runs}; {limits.waiting_runs} waiting")
            assert limits.active_runs == 1
            for server, run_id in ids:
                assert (await server.wait(run_id, timeout=30)).status is asm.RunStatus.COMPLETED

    print("start order:", ", ".join(started))
    assert started == [name for _, name in order]


if __name__ == "__main__":
    trio.run(main)
