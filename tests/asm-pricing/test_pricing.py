"""asm-pricing: the shipped tables, found through the entry point, priced exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

import asm
from asm import AsmError, TokenUsage
from asm.cost import Pricing
from asm.events import CostUpdated, EventType, TokenUsageUpdated
from asm.providers.scripted import ScriptedProvider

MILLION = 1_000_000


def shipped() -> Pricing:
    registry = asm.load_plugins()
    return Pricing(registry.create("pricing", name, {}) for name in ("anthropic", "openai", "google"))


def test_the_tables_are_registered_through_the_entry_point() -> None:
    registry = asm.load_plugins()
    assert {"anthropic", "openai", "google"} <= set(registry.names("pricing"))
    assert registry.get("pricing", "anthropic").distribution == "asm-pricing"
    table = registry.create("pricing", "anthropic", {})
    assert table.as_of and "claude-sonnet-4-5" in table.models


@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [
        ("claude-sonnet-4-5", "3", "15"),
        ("claude-sonnet-4-5-20250929", "3", "15"),  # alias
        ("claude-3-5-haiku-latest", "0.80", "4"),  # alias
        ("claude-opus-4-1-20990101", "15", "75"),  # a dated version of a known id
        ("gpt-4o-mini-2024-07-18", "0.15", "0.60"),  # the longest known prefix wins
        ("gpt-4o-2024-08-06", "2.50", "10"),
        ("gpt-5", "1.25", "10"),
        ("gemini-2.5-pro", "1.25", "10"),
        ("gemini-2.5-flash", "0.30", "2.50"),
        ("gemini-2.5-flash-lite", "0.10", "0.40"),  # not gemini-2.5-flash: the longest prefix
    ],
)
def test_models_are_matched_by_id_alias_and_dated_version(model: str, input_price: str, output_price: str) -> None:
    price = shipped().price(model)
    assert price is not None
    assert (price.input, price.output) == (Decimal(input_price), Decimal(output_price))


@pytest.mark.parametrize("model", ["gpt-4o-mini-turbo", "claude-sonnet", "llama-3", "", None])
def test_unknown_models_have_no_price(model: str | None) -> None:
    assert shipped().price(model) is None
    assert shipped().cost(model, TokenUsage(10, 10)) is None


def test_cost_is_exact_decimal_arithmetic() -> None:
    usage = TokenUsage(input_tokens=1_234, output_tokens=567, cache_read_tokens=10_000, cache_write_tokens=2_000)
    cost = shipped().cost("claude-sonnet-4-5", usage)
    assert cost is not None
    assert cost.input_usd == Decimal("0.003702")
    assert cost.output_usd == Decimal("0.008505")
    assert cost.cache_read_usd == Decimal("0.003")
    assert cost.cache_write_usd == Decimal("0.0075")
    assert cost.total_usd == Decimal("0.022707")


async def test_config_overrides_and_adds_models(isolated_config: None) -> None:
    overrides = {
        "pricing.anthropic.models.claude-sonnet-4-5.input": 4,
        "pricing.anthropic.models.claude-sonnet-4-5.output": 20,
        "pricing.mine.models.our-model.input": "1.5",
        "pricing.mine.models.our-model.output": 6,
    }
    runtime = asm.assemble(asm.load_config(overrides))
    pricing = runtime.manager.pricing
    assert pricing is not None
    sonnet = pricing.price("claude-sonnet-4-5")
    assert sonnet is not None and (sonnet.input, sonnet.output) == (Decimal(4), Decimal(20))
    ours = pricing.price("our-model")
    assert ours is not None and ours.input == Decimal("1.5")
    assert pricing.price("gpt-4o") is not None  # the rest of the shipped tables stay


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"pricing.mine.models.m.input": 1}, "pricing.mine.models.m.output (from argument"),
        ({"pricing.mine.models.m.input": 1}, "is missing"),
        ({"pricing.anthropic.models.m.input": -1, "pricing.anthropic.models.m.output": 1}, "negative"),
        ({"pricing.openai.models.m.input": "cheap", "pricing.openai.models.m.output": 1}, "not a number"),
        ({"pricing.openai.models.m.input": 1, "pricing.openai.models.m.outptu": 1}, "outptu"),
    ],
)
def test_bad_pricing_config_names_the_key(isolated_config: None, overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        asm.assemble(asm.load_config(overrides))
    assert caught.value.code == "invalid_config"
    assert fragment in caught.value.message


async def test_a_run_gets_cost_events_and_a_cost(isolated_config: None) -> None:
    provider = ScriptedProvider(
        [
            "hi",
            TokenUsageUpdated(TokenUsage(input_tokens=MILLION), model="claude-haiku-4-5-20251001"),
            TokenUsageUpdated(TokenUsage(output_tokens=MILLION)),
        ]
    )
    async with asm.open_runtime(store="memory") as runtime:
        run = await runtime.run_once("go", provider=provider)
        events = (await runtime.store.read_events(run.session_id, types=[EventType.COST_UPDATED])).events
    assert [e.data for e in events] == [
        CostUpdated(asm.Cost(1, 1, 0), "claude-haiku-4-5-20251001"),
        CostUpdated(asm.Cost(6, 1, 5), "claude-haiku-4-5-20251001"),
    ]
    assert run.cost == asm.Cost(6, 1, 5)
