"""Cost: exact, model-aware, reported when known and never a made-up zero."""

from __future__ import annotations

from decimal import Decimal

import pytest

import asm
from asm import AsmError, Cost, SessionManager, TokenUsage
from asm.cost import ModelPrice, Pricing, PricingTable, pricing_table_from_config
from asm.events import CostUpdated, ErrorOccurred, EventType, TokenUsageUpdated
from asm.model import RunResult
from asm.providers.scripted import ScriptedProvider
from asm.stores.memory import InMemorySessionStore

PRICING = Pricing([PricingTable("t", "2026-11-01", {"m-1": ModelPrice(input=2, output=8, aliases=("m-one",))})])


def test_lookup_by_id_alias_and_dated_version_only() -> None:
    assert PRICING.price("m-1") is PRICING.price("m-one") is PRICING.price("m-1-20261101")
    assert PRICING.price("m-1.5") is not None  # a point version
    for unknown in ("m-10", "m-1-mini", "m", None):
        assert PRICING.price(unknown) is None, unknown


def test_cache_tokens_default_to_the_input_price() -> None:
    cost = ModelPrice(input=2, output=8).cost(TokenUsage(0, 0, cache_read_tokens=500_000, cache_write_tokens=500_000))
    assert cost == Cost(Decimal(2), 0, 0, Decimal(1), Decimal(1))


def test_earlier_tables_win() -> None:
    cheap = PricingTable("override", "", {"m-1": ModelPrice(input=1, output=1)})
    price = Pricing([cheap, *PRICING.tables]).price("m-1")
    assert price is not None and price.input == Decimal(1)


async def run_with(provider: ScriptedProvider, pricing: Pricing | None = PRICING) -> tuple[asm.Run, list[asm.Event]]:
    store = InMemorySessionStore()
    run = await SessionManager(store, provider=provider, pricing=pricing).run_once("go", options={"model": "m-1"})
    return run, list((await store.read_events(run.session_id)).events)


async def test_cost_updates_follow_each_usage_update_and_add_up() -> None:
    usage = TokenUsage(input_tokens=250_000, output_tokens=125_000)
    run, events = await run_with(ScriptedProvider([TokenUsageUpdated(usage), "x", TokenUsageUpdated(usage)]))
    costs = [e.data for e in events if isinstance(e.data, CostUpdated)]
    assert costs == [CostUpdated(Cost("1.5", "0.5", "1"), "m-1"), CostUpdated(Cost(3, 1, 2), "m-1")]
    assert run.cost == Cost(3, 1, 2)
    kinds = [e.type for e in events]
    assert kinds.index(EventType.COST_UPDATED) == kinds.index(EventType.TOKEN_USAGE_UPDATED) + 1


async def test_an_unknown_model_gives_unknown_cost_and_one_warning() -> None:
    usage = TokenUsageUpdated(TokenUsage(10, 10), model="mystery-model")
    run, events = await run_with(ScriptedProvider([usage, usage, usage]))
    assert run.cost is None
    warnings = [e.data for e in events if isinstance(e.data, ErrorOccurred)]
    assert len(warnings) == 1 and warnings[0].error_code == "cost_unknown"
    assert "mystery-model" in warnings[0].error_message and "[pricing." in warnings[0].error_message
    assert not any(isinstance(e.data, CostUpdated) for e in events)


async def test_a_cost_the_provider_reports_wins() -> None:
    reported = CostUpdated(Cost("0.42"), "m-1")
    run, _ = await run_with(ScriptedProvider([TokenUsageUpdated(TokenUsage(1_000_000, 0)), reported]))
    assert run.cost == Cost("0.42")
    run, _ = await run_with(ScriptedProvider(["x"], result=RunResult(output="x", cost=Cost("0.07"))))
    assert run.cost == Cost("0.07")


async def test_without_pricing_the_cost_is_unknown_not_zero() -> None:
    run, events = await run_with(ScriptedProvider([TokenUsageUpdated(TokenUsage(5, 5))]), pricing=None)
    assert run.cost is None and not any(e.type is EventType.COST_UPDATED for e in events)


def test_money_round_trips_json_exactly() -> None:
    from asm.serde import event_from_json, event_to_json

    event = asm.Event.new(CostUpdated(Cost("0.1") + Cost("0.2"), "m"), session_id="s").with_seq(1)
    assert '"total_usd":"0.3"' in event_to_json(event)
    assert event_from_json(event_to_json(event)) == event


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"models": {"m": {"input": 1}}}, "pricing.x.models.m.output is missing"),
        ({"models": {"m": {"input": -1, "output": 1}}}, "negative"),
        ({"models": {"m": {"input": "lots", "output": 1}}}, "not a number"),
        ({"models": {"m": {"input": 1, "output": 1, "cache": 1}}}, "unknown key(s) cache"),
        ({"models": {"m": 3}}, "must be a table"),
        ({"currency": "EUR"}, "unknown key(s) currency"),
    ],
)
def test_bad_pricing_tables_name_the_key(table: dict[str, object], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        pricing_table_from_config("x", table)
    assert caught.value.code == "invalid_config" and fragment in caught.value.message
