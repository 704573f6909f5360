"""Core overhead: 100,000 ``message_streamed`` chunks through ``run_once``.

asm: ScriptedProvider -> SessionManager.run_once -> in-memory store -> an
``on_event`` callback. Baseline, in the same run: a bare trio loop handing the
same chunks to the same callback. Target: >= 150,000 events/s through asm.

    python benchmarks/core_overhead.py [--chunks N] [--repeats R] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import best_and_median, stopwatch, write_section

from asm import InMemorySessionStore, SessionManager
from asm.events import MessageStreamed
from asm.providers.scripted import ScriptedProvider

TARGET_EVENTS_PER_S = 150_000


class Counter:
    """The callback both sides hand their chunks to."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, item: object) -> None:
        self.count += 1


def time_asm(chunks: list[str]) -> float:
    provider = ScriptedProvider(chunks)
    counter = Counter()

    async def main() -> float:
        manager = SessionManager(InMemorySessionStore(), provider=provider)
        elapsed = stopwatch()
        run = await manager.run_once("benchmark", on_event=counter)
        seconds = elapsed()
        assert run.output == "".join(chunks), run.status
        return seconds

    gc.collect()
    seconds = trio.run(main)
    # Every chunk plus the lifecycle events reached the callback.
    assert counter.count >= len(chunks), counter.count
    return seconds


def time_bare(chunks: list[str]) -> float:
    payloads = [MessageStreamed(chunk) for chunk in chunks]
    counter = Counter()

    async def main() -> float:
        elapsed = stopwatch()
        for payload in payloads:
            counter(payload)
        await trio.lowlevel.checkpoint()
        return elapsed()

    gc.collect()
    seconds = trio.run(main)
    assert counter.count == len(chunks)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    chunks = [f"tok{i % 97} " for i in range(args.chunks)]

    asm_best, asm_median = best_and_median(lambda: time_asm(chunks), args.repeats)
    bare_best, bare_median = best_and_median(lambda: time_bare(chunks), args.repeats)
    rate_best = args.chunks / asm_best
    rate_median = args.chunks / asm_median
    verdict = "meets" if rate_median >= TARGET_EVENTS_PER_S else "MISSES"
    body = f"""
{args.chunks:,} `message_streamed` chunks from `ScriptedProvider` through `SessionManager.run_once` with
the in-memory store and a counting `on_event` callback, against a bare trio loop handing the same
chunks to the same callback. Best and median of {args.repeats} runs each.

| | best | median | events/s (median) |
|---|---|---|---|
| asm `run_once` | {asm_best * 1000:.1f} ms | {asm_median * 1000:.1f} ms | {rate_median:,.0f} |
| bare trio loop | {bare_best * 1000:.1f} ms | {bare_median * 1000:.1f} ms | {args.chunks / bare_median:,.0f} |

Throughput through asm: **{rate_median:,.0f} events/s** (best {rate_best:,.0f}); target
{TARGET_EVENTS_PER_S:,} events/s: {verdict} it. Ratio asm / bare loop (median time):
**{asm_median / bare_median:.1f}x**. The bare loop does nothing but call the callback, so the ratio is
the whole cost of what asm adds per event: an id, a timestamp, the event envelope, the per-run write
queue, seq assignment by the store, and in-order delivery after the store's acknowledgement.
"""
    print(body)
    if not args.no_write:
        write_section("core_overhead", body)


if __name__ == "__main__":
    main()
