"""Cost tracking: pricing tables turn token usage into exact costs, live.

Run: python examples/cost_tracking.py (offline). With asm-pricing installed, current
Anthropic and OpenAI prices are used; here a table of our own shows the mechanism.
"""

from __future__ import annotations

from decimal import Decimal

import trio

import asm
from asm.cost import ModelPrice, Pricing, PricingTable
from asm.events import CostUpdated, TokenUsageUpdated
from asm.providers.scripted import ScriptedProvider


async def main() -> None:
    prices = PricingTable("ours", "2026-11-25", {"house-model": ModelPrice(input=3, output=15, cache_read="0.3")})
    store = asm.InMemorySessionStore()
    manager = asm.SessionManager(store, pricing=Pricing([prices]))

    provider = ScriptedProvider(
        [
            "The answer",
            TokenUsageUpdated(asm.TokenUsage(input_tokens=12_000, output_tokens=800, cache_read_tokens=40_000)),
            " is 42.",
            TokenUsageUpdated(asm.TokenUsage(input_tokens=500, output_tokens=200)),
        ]
    )
    run = await manager.run_once("What is the answer?", provider=provider, options={"model": "house-model-20261101"})
    for event in (await store.read_events(run.session_id, types=["cost_updated"])).events:
        assert isinstance(event.data, CostUpdated)
        print(f"seq {event.seq}: ${event.data.cost.total_usd} so far ({event.data.model})")
    print(f"run cost: ${run.cost.total_usd if run.cost else 'unknown'} for {run.usage.total_tokens} tokens")
    assert run.cost is not None and run.cost.total_usd == Decimal("0.0645")

    # A model no table knows: the cost is unknown (None), never a made-up 0, with one warning.
    run = await manager.run_once("hi", provider=ScriptedProvider([TokenUsageUpdated(asm.TokenUsage(1, 1))]),
                                 options={"model": "mystery"})  # fmt: skip
    warnings = (await store.read_events(run.session_id, types=["error_occurred"])).events
    print(f"unknown model: cost={run.cost}, warning: {warnings[0].data.error_message}")  # type: ignore[attr-defined]
    assert run.cost is None and len(warnings) == 1


if __name__ == "__main__":
    trio.run(main)
