"""Governance overhead: two stacked policies + cost + redaction on the streaming path.

The same run — 100,000 ``message_streamed`` chunks with a ``token_usage_updated``
every 50 chunks — through ``run_once`` with the in-memory store, once with no
governance and once with two stacked policies (limits that are never reached,
tool rules), a pricing table (so every usage update also computes and emits a
``cost_updated``) and the secrets redactor. Target: <= 5 us added per event.

    python benchmarks/governance.py [--chunks N] [--repeats R] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section

import asm
from asm import InMemorySessionStore, SessionManager, TokenUsage
from asm.cost import ModelPrice, Pricing, PricingTable
from asm.events import TokenUsageUpdated
from asm.policy import Limits, Policy, ToolRule
from asm.providers.scripted import ScriptedProvider
from asm.redaction import EventRedactor

TARGET_US_PER_EVENT = 5.0


def script(chunks: int) -> list[Any]:
    steps: list[Any] = []
    for i in range(chunks):
        steps.append(f"token{i % 97} ")
        if i % 50 == 49:
            steps.append(TokenUsageUpdated(TokenUsage(input_tokens=10, output_tokens=50), model="model-1"))
    return steps


def time_run(steps: list[Any], governed: bool) -> float:
    provider = ScriptedProvider(steps)
    options: dict[str, Any] = {}
    if governed:
        pricing = Pricing([PricingTable("bench", "", {"model-1": ModelPrice(input=3, output=15)})])
        policies = [
            Policy("budget", Limits(max_total_tokens=10**12, max_cost_usd=10**9, max_tool_calls=10**6)),
            Policy("tools", Limits(max_output_tokens=10**12), (ToolRule("rm*", "deny"), ToolRule("bash", "ask"))),
        ]
        registry = asm.load_plugins(entry_points=False, extra=[EventRedactor()])
        options = {"pricing": pricing, "policies": policies, "plugins": registry}

    async def main() -> float:
        manager = SessionManager(InMemorySessionStore(), provider=provider, **options)
        elapsed = stopwatch()
        run = await manager.run_once("benchmark", on_event=lambda event: None)
        seconds = elapsed()
        assert run.status is asm.RunStatus.COMPLETED, run.error
        assert (run.cost is not None) is governed
        return seconds

    gc.collect()
    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    steps = script(args.chunks)
    events = len(steps)

    # Alternate the two so that load on the machine falls on both alike; compare the best runs.
    plain_times, gov_times = [], []
    for _ in range(args.repeats):
        plain_times.append(time_run(steps, governed=False))
        gov_times.append(time_run(steps, governed=True))
    plain_best, plain_median = min(plain_times), statistics.median(plain_times)
    gov_best, gov_median = min(gov_times), statistics.median(gov_times)
    overhead_us = (gov_best - plain_best) / events * 1e6
    verdict = "meets" if overhead_us <= TARGET_US_PER_EVENT else "MISSES"
    body = f"""
One run of {args.chunks:,} `message_streamed` chunks plus a `token_usage_updated` every 50 chunks
({events:,} provider events) through `run_once` with the in-memory store, without and with
governance: two stacked policies (limits never reached, `deny`/`ask` tool rules), a pricing table
(each usage update also computes and emits `cost_updated`) and the secrets redactor. Best and
median of {args.repeats} runs each, the two kinds alternated.

| | best | median | per provider event (median) |
|---|---|---|---|
| no governance | {plain_best * 1000:.1f} ms | {plain_median * 1000:.1f} ms | {plain_median / events * 1e6:.2f} µs |
| governed | {gov_best * 1000:.1f} ms | {gov_median * 1000:.1f} ms | {gov_median / events * 1e6:.2f} µs |

Overhead of governance (best against best, the runs alternated): **{overhead_us:.2f} µs per event**
(target ≤ {TARGET_US_PER_EVENT:g} µs: {verdict} it); ratio governed / plain (best): {gov_best / plain_best:.2f}x.
"""
    print(body)
    if not args.no_write:
        write_section("governance", body)


if __name__ == "__main__":
    main()
