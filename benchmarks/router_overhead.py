"""Router overhead: a run through the ``router`` provider against the same member called directly.

In the same run, with a scripted member:

(a) per run: 2,000 one-event runs, ``router.execute`` against ``member.execute`` (the
    same emit, a plain coroutine), so the difference is the router's own work: choosing,
    its breaker and stickiness bookkeeping, ``route_selected`` and the result it returns;
(b) per event: one 10,000-event run each way; the difference, less (a), per event;
(c) both through ``SessionManager.run_once`` (in-memory store), for scale;
(d) failover latency: a member that fails before any output, then the second member's
    first event — from the moment the first raises to the moment the second's event is
    emitted, through the manager.

Targets: (a) <= 50 us per run, (b) <= 0.5 us per event, (d) <= 5 ms.

    python benchmarks/router_overhead.py [--events N] [--runs N] [--repeats R] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section
from asm_router import RouterOptions, RouterProvider

import asm
from asm.events import EventData, MessageStreamed
from asm.providers.scripted import ScriptedProvider
from asm.stores.memory import InMemorySessionStore

TARGET_RUN_US = 50.0
TARGET_EVENT_US = 0.5
TARGET_FAILOVER_MS = 5.0


async def _sink(data: EventData, /) -> None:
    """The emit both sides get: accepts the event, as the manager's queue does when it has room."""


_sink.error_text_max_bytes = 16384  # type: ignore[attr-defined]
_sink.error_text_max_lines = 200  # type: ignore[attr-defined]


def _router(member: Any) -> RouterProvider:
    return RouterProvider({"m": member}, RouterOptions(members=["m"]), name="bench")


async def _execute_many(provider: Any, runs: int) -> float:
    run = asm.RunInput.coerce("hello")
    run = asm.RunInput(messages=run.messages, session_id="ses_bench", run_id="run_bench")
    clock = stopwatch()
    for _ in range(runs):
        await provider.execute(run, _sink)
    return clock()


async def per_run(runs: int, repeats: int) -> tuple[float, float, float]:
    member = ScriptedProvider(["x"], name="m")
    router = _router(member)
    direct, routed = [], []
    for _ in range(repeats):  # interleaved, so both sides see the same machine
        gc.collect()
        direct.append(await _execute_many(member, runs))
        gc.collect()
        routed.append(await _execute_many(router, runs))
    d, r = statistics.median(direct) / runs, statistics.median(routed) / runs
    return d * 1e6, r * 1e6, (r - d) * 1e6


async def per_event(events: int, repeats: int, run_overhead_us: float) -> tuple[float, float, float]:
    member = ScriptedProvider([MessageStreamed("x")] * events, name="m")
    router = _router(member)
    direct, routed = [], []
    for _ in range(repeats):
        gc.collect()
        direct.append(await _execute_many(member, 1))
        gc.collect()
        routed.append(await _execute_many(router, 1))
    # The best of each side: on a busy machine the noise is only ever added time.
    d, r = min(direct), min(routed)
    return d * 1e3, r * 1e3, ((r - d) * 1e6 - run_overhead_us) / events


async def through_manager(events: int, repeats: int) -> tuple[float, float]:
    member = ScriptedProvider([MessageStreamed("x")] * events, name="m")
    router = _router(member)
    direct, routed = [], []
    for _ in range(repeats):
        for provider, times in ((member, direct), (router, routed)):
            manager = asm.SessionManager(InMemorySessionStore(), provider=provider)
            gc.collect()
            clock = stopwatch()
            run = await manager.run_once("hello")
            times.append(clock())
            assert run.status is asm.RunStatus.COMPLETED
    return statistics.median(direct) * 1e3, statistics.median(routed) * 1e3


class _FailsAt:
    name = "first"

    def __init__(self) -> None:
        self.failed_at = 0.0

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Any) -> asm.RunResult:
        await trio.lowlevel.checkpoint()
        self.failed_at = time.perf_counter()
        raise asm.AsmError("provider_unavailable", "529 overloaded")


class _FirstEventAt:
    name = "second"

    def __init__(self) -> None:
        self.first_at = 0.0

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Any) -> asm.RunResult:
        self.first_at = time.perf_counter()  # the member's own start is nil: its first event at once
        await emit(MessageStreamed("hello"))
        return asm.RunResult(output="hello")


async def failover(runs: int) -> tuple[float, float]:
    first, second = _FailsAt(), _FirstEventAt()
    router = RouterProvider(
        {"first": first, "second": second},
        RouterOptions(members=["first", "second"], failure_threshold=10**9, sticky_ttl=0),
        name="bench",
    )
    manager = asm.SessionManager(InMemorySessionStore(), provider=router)
    latencies = []
    for _ in range(runs):
        run = await manager.run_once("hello")
        assert run.output == "hello"
        latencies.append((second.first_at - first.failed_at) * 1e3)
    return statistics.median(latencies), max(latencies)


async def main(args: argparse.Namespace) -> None:
    direct_run, routed_run, run_us = await per_run(args.runs, args.repeats)
    direct_ms, routed_ms, event_us = await per_event(args.events, args.repeats * 3, run_us)
    manager_direct, manager_routed = await through_manager(args.events, args.repeats)
    failover_median, failover_max = await failover(args.runs // 10)
    load = os.getloadavg()[0]
    ok = run_us <= TARGET_RUN_US and event_us <= TARGET_EVENT_US and failover_median <= TARGET_FAILOVER_MS
    rows = [
        "| what | direct | through the router | router's own cost | target |",
        "|---|---|---|---|---|",
        f"| one-event run, `execute` ({args.runs:,} runs) | {direct_run:.1f} us | {routed_run:.1f} us "
        f"| **{run_us:.1f} us per run** | <= {TARGET_RUN_US:g} us |",
        f"| {args.events:,}-event run, `execute` | {direct_ms:.2f} ms | {routed_ms:.2f} ms "
        f"| **{event_us:.3f} us per event** | <= {TARGET_EVENT_US:g} us |",
        f"| {args.events:,}-event run, `SessionManager.run_once` (memory store) | {manager_direct:.2f} ms "
        f"| {manager_routed:.2f} ms | for scale | |",
    ]
    table = "\n".join(rows)
    body = f"""
`benchmarks/router_overhead.py`: the `router` provider (asm-router) in front of one scripted
member, against the member called directly, in the same run (load average {load:.2f}). Per run:
medians of {args.repeats} interleaved repeats; per event: the best of {args.repeats * 3} each.

{table}

Failover latency (a member fails before any output, through the manager; from its error to the
second member's first event, {args.runs // 10} runs): median **{failover_median:.3f} ms**, max
{failover_max:.3f} ms (target <= {TARGET_FAILOVER_MS:g} ms plus the member's own start, nil here). It
holds the failed attempt's bookkeeping, a `route_failed_over` and a `route_selected` event.

Per run the router chooses (breaker and stickiness checks), emits `route_selected` and returns the
result with its `router` metadata; per event it is one wrapper call that notes whether output has
started. Targets met: {"yes" if ok else "NO"}.
"""
    print(body)
    if not args.no_write:
        write_section("Router overhead", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    trio.run(main, parser.parse_args())
