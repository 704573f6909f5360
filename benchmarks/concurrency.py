"""Concurrency: many sessions in one trio process, server latency, subscription fan-out.

1. 10,000 concurrent sessions, each a SessionServer running one run of 50
   scripted events on the in-memory store: wall time, events/s, peak RSS.
   Baseline, in the same process: the same runs through bare
   ``SessionManager.run_once`` (no server).
2. RSS per idle session: 10,000 open SessionServers with nothing to do
   (target <= 20 KiB each).
3. Submit-to-start latency of a SessionServer with free slots: from
   ``submit()`` to the run's ``run_started`` reaching ``on_event``.
4. Fan-out: 1,000 durable subscribers on one session, one run of 2,000
   events: events delivered per second across all subscribers.

    python benchmarks/concurrency.py [--sessions N] [--subscribers N] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section

import asm
from asm import EchoProvider, EventType, InMemorySessionStore, SessionManager
from asm.providers.scripted import ScriptedProvider

TARGET_IDLE_KIB = 20
EVENTS_PER_RUN = 50


def rss_kib() -> int:
    """Resident set size now, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def many_sessions(sessions: int, *, server: bool) -> tuple[float, int]:
    """(seconds, events stored) for ``sessions`` concurrent one-run sessions."""
    provider = ScriptedProvider([f"tok{i} " for i in range(EVENTS_PER_RUN)])

    async def main() -> tuple[float, int]:
        store = InMemorySessionStore()
        manager = SessionManager(store, provider=provider)

        async def one() -> None:
            if server:
                async with asm.open_session_server(manager) as srv:
                    run = await srv.wait(await srv.submit("go"))
            else:
                run = await manager.run_once("go")
            assert run.status is asm.RunStatus.COMPLETED, run.error

        elapsed = stopwatch()
        async with trio.open_nursery() as nursery:
            for _ in range(sessions):
                nursery.start_soon(one)
        seconds = elapsed()
        stored = 0
        for session in await store.list_sessions():
            stored += await store.latest_seq(session.id)
        return seconds, stored

    gc.collect()
    return trio.run(main)


def idle_sessions(sessions: int) -> float:
    """KiB of RSS per open, idle SessionServer."""

    async def main() -> float:
        manager = SessionManager(InMemorySessionStore(), provider=EchoProvider())
        ready = trio.Event()
        opened = 0
        before = 0

        async def one(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            nonlocal opened
            async with asm.open_session_server(manager):
                opened += 1
                task_status.started()
                await ready.wait()

        # Warm up allocator and code paths, then measure the next ``sessions``.
        async with trio.open_nursery() as warm:
            for _ in range(100):
                await warm.start(one)
            ready.set()
        ready = trio.Event()
        gc.collect()
        before = rss_kib()
        async with trio.open_nursery() as nursery:
            for _ in range(sessions):
                await nursery.start(one)
            gc.collect()
            after = rss_kib()
            ready.set()
        return (after - before) / sessions

    return trio.run(main)


def submit_latency(runs: int) -> tuple[float, float]:
    """(median, p99) seconds from submit() to run_started delivered, with a free slot."""
    started: dict[str, float] = {}

    def on_event(event: asm.Event) -> None:
        if event.type is EventType.RUN_STARTED and event.run_id is not None:
            started[event.run_id] = time.perf_counter()

    async def main() -> list[float]:
        latencies = []
        async with asm.open_session_server(InMemorySessionStore(), EchoProvider(), on_event=on_event) as server:
            for _ in range(runs):
                t0 = time.perf_counter()
                run_id = await server.submit("ping")
                await server.wait(run_id)
                latencies.append(started[run_id] - t0)
        return latencies

    gc.collect()
    latencies = sorted(trio.run(main))
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def fan_out(subscribers: int, events: int) -> tuple[float, int, int]:
    """(seconds, events delivered in total, store catch-ups) for one run watched by many subscribers."""
    provider = ScriptedProvider([f"e{i}" for i in range(events)])

    async def main() -> tuple[float, int, int]:
        store = InMemorySessionStore()
        delivered = 0
        catch_ups = 0
        async with asm.open_session_server(store, provider) as server:
            ready = 0
            all_ready = trio.Event()

            async def subscriber() -> None:
                nonlocal delivered, catch_ups, ready
                async with server.subscribe(after=await store.latest_seq(server.session_id)) as stream:
                    ready += 1
                    if ready == subscribers:
                        all_ready.set()
                    async for event in stream:
                        delivered += 1
                        if event.type is EventType.RUN_COMPLETED:
                            catch_ups += stream.catch_ups
                            return

            async with trio.open_nursery() as nursery:
                for _ in range(subscribers):
                    nursery.start_soon(subscriber)
                await all_ready.wait()
                elapsed = stopwatch()
                run_id = await server.submit("go")
                await server.wait(run_id)
            seconds = elapsed()
        assert delivered >= subscribers * events
        return seconds, delivered, catch_ups

    gc.collect()
    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--fanout-events", type=int, default=2_000)
    parser.add_argument("--latency-runs", type=int, default=2_000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()

    idle_kib = idle_sessions(args.sessions)
    print(f"idle SessionServer: {idle_kib:.1f} KiB RSS each (target <= {TARGET_IDLE_KIB})")
    server_s, server_events = many_sessions(args.sessions, server=True)
    peak = peak_rss_kib()
    print(
        f"{args.sessions} servers x 1 run: {server_s:.2f} s, {server_events / server_s:,.0f} events/s, "
        f"peak RSS {peak / 1024:.0f} MiB"
    )
    bare_s, bare_events = many_sessions(args.sessions, server=False)
    print(f"{args.sessions} x run_once (baseline): {bare_s:.2f} s, {bare_events / bare_s:,.0f} events/s")
    median, p99 = submit_latency(args.latency_runs)
    print(f"submit -> run_started: median {median * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us")
    fan_s, delivered, catch_ups = fan_out(args.subscribers, args.fanout_events)
    print(
        f"fan-out: {args.subscribers} subscribers, {delivered:,} deliveries in {fan_s:.2f} s "
        f"= {delivered / fan_s:,.0f} events/s ({catch_ups} store catch-ups)"
    )
    if not args.no_write:
        n = f"{args.sessions:,}"
        rows = [
            (
                f"{n} concurrent sessions, each a `SessionServer` with one run of {EVENTS_PER_RUN} scripted events",
                f"{server_s:.2f} s wall, {server_events:,} events stored, **{server_events / server_s:,.0f} events/s**",
            ),
            (
                f"the same {n} runs through bare `run_once` (baseline, no server)",
                f"{bare_s:.2f} s, {bare_events / bare_s:,.0f} events/s",
            ),
            (f"peak RSS of the process after the {n} sessions", f"{peak / 1024:.0f} MiB"),
            (
                f"RSS per idle open `SessionServer` (session + dispatcher task), target <= {TARGET_IDLE_KIB} KiB",
                f"**{idle_kib:.1f} KiB**",
            ),
            (
                f"submit -> `run_started` delivered, server with a free slot ({args.latency_runs:,} runs)",
                f"median **{median * 1e6:.0f} us**, p99 {p99 * 1e6:.0f} us",
            ),
            (
                f"fan-out: {args.subscribers:,} durable subscribers on one session, "
                f"one run of {args.fanout_events:,} events",
                f"{delivered:,} deliveries in {fan_s:.2f} s = **{delivered / fan_s:,.0f} events/s** delivered "
                f"({catch_ups} catch-ups from the store)",
            ),
        ]
        table = "\n".join(f"| {what} | {result} |" for what, result in rows)
        load = os.getloadavg()[0]
        body = f"""`benchmarks/concurrency.py`. All in one trio process on the in-memory store; load average
{load:.1f} when it finished (above the core count, other work shared the CPUs and the tail
latencies show it).

| measure | result |
|---|---|
{table}

The submit latency includes storing `run_queued`, the `pending -> running` save and storing
`run_started` (the server starts the next queued run only once the previous one's `run_started` is
stored, which is what makes the start order FIFO). The 2,000 runs are one session's, and each
starts with its continuation plan (`continuation = "auto"`, docs/continuity.md): the echo provider
has no native resume, so the session's transcript is replayed, read through the manager's
`TranscriptCache` from where the previous run ended (rebuilt from the whole log at every start, it
took 10 ms median over 2,000 runs; 0.14 ms before continuity existed, 2026-11-25). Fan-out
subscribers whose live buffer (1,000 events) overflows read the missed events back from the store,
so none is lost and the run is never held back. A server costs about 0.3 ms of CPU per session over
bare `run_once` (its own task group and dispatcher task, the `run_queued` event, the FIFO start
hand-off); with 10,000 sessions alive the heap holds over 500,000 stored events, and the garbage
collector walking it accounts for much of the rest of the gap to single-run throughput
(`core_overhead`)."""
        write_section("concurrency", body)


if __name__ == "__main__":
    main()
