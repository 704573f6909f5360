"""Cost: exact, model-aware, reported when known and never a made-up zero."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import asm
from asm import AsmError, Cost, SessionManager, TokenUsage
from asm.cost import ModelPrice, Pricing, PricingTable, pricing_table_from_config
from asm.events import (
    CostUpdated,
    ErrorOccurred,
    EventData,
    EventType,
    RunCompleted,
    RunStarted,
    TokenUsageUpdated,
)
from asm.model import RunResult
from asm.ports import Emit
from asm.providers.scripted import EchoProvider, ScriptedProvider, Step
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


# -- the run's model: known before it starts, updated as the provider reports it ------------


def payloads(events: list[asm.Event], kind: type[EventData]) -> list[Any]:
    return [e.data for e in events if isinstance(e.data, kind)]


async def run_plain(provider: object, **options: object) -> tuple[asm.Run, list[asm.Event]]:
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=provider, pricing=PRICING)  # type: ignore[arg-type]
    run = await manager.run_once("go", options=options)
    return run, list((await store.read_events(run.session_id)).events)


async def test_the_model_from_the_providers_own_config_prices_the_run_and_is_recorded() -> None:
    # codex with `model` in [providers.codex]: no run option, tokens reported without a model
    usage = TokenUsage(input_tokens=250_000, output_tokens=125_000)
    run, events = await run_plain(ScriptedProvider([TokenUsageUpdated(usage)], model="m-1"))
    assert payloads(events, RunStarted) == [RunStarted("scripted", "m-1")]
    assert payloads(events, ErrorOccurred) == []
    assert run.cost == Cost("1.5", "0.5", "1")
    assert run.model == "m-1"
    assert payloads(events, RunCompleted)[0].model == "m-1"


async def test_a_run_option_overrides_the_configured_model() -> None:
    run, events = await run_plain(ScriptedProvider([TokenUsageUpdated(TokenUsage(1, 1))], model="m-9"), model="m-1")
    assert payloads(events, RunStarted) == [RunStarted("scripted", "m-1")]
    assert run.model == "m-1" and run.cost is not None


async def test_a_model_learned_during_the_run_updates_it() -> None:
    # claude-code without a configured model: its init line names the model, its usage carries it
    usage = TokenUsageUpdated(TokenUsage(input_tokens=1_000_000), model="m-1")
    run, events = await run_plain(ScriptedProvider([usage], model=None, result=RunResult(output="x")))
    assert payloads(events, RunStarted) == [RunStarted("scripted", None)]
    assert run.model == "m-1" and run.cost == Cost(2, 2)
    assert payloads(events, RunCompleted)[0].model == "m-1"
    assert payloads(events, ErrorOccurred) == []


async def test_a_provider_that_reports_its_own_cost_gets_no_cost_unknown() -> None:
    # tokens on a model no table prices, then the provider's own figure (claude-code's total_cost_usd)
    steps: list[Step] = [TokenUsageUpdated(TokenUsage(10, 10), "mystery"), CostUpdated(Cost("0.5"), "mystery")]
    run, events = await run_plain(ScriptedProvider(steps, model=None))
    assert payloads(events, ErrorOccurred) == []
    assert run.cost == Cost("0.5") and run.model == "mystery"
    # or only in its result
    result = RunResult(output="x", model="mystery", cost=Cost(0))
    run, events = await run_plain(ScriptedProvider([TokenUsageUpdated(TokenUsage(10, 10), "mystery")], result=result))
    assert payloads(events, ErrorOccurred) == []
    assert run.cost == Cost(0)


async def test_echo_reports_its_model_and_a_zero_cost() -> None:
    run, events = await run_plain(EchoProvider())
    assert payloads(events, ErrorOccurred) == []
    assert payloads(events, RunStarted) == [RunStarted("echo", "echo")]
    assert run.cost == Cost() and run.model == "echo"


async def test_the_unknown_cost_warning_comes_once_before_the_runs_end() -> None:
    steps: list[Step] = [TokenUsageUpdated(TokenUsage(10, 10), "mystery"), "x", TokenUsageUpdated(TokenUsage(1, 1))]
    run, events = await run_plain(ScriptedProvider(steps, model=None))
    kinds = [e.type for e in events]
    assert kinds.count(EventType.ERROR_OCCURRED) == 1
    assert kinds.index(EventType.ERROR_OCCURRED) < kinds.index(EventType.RUN_COMPLETED)
    assert run.cost is None and run.model == "mystery"


class Plain:
    """A third-party provider written before ``model_for`` existed."""

    name = "plain"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Emit) -> RunResult:
        await emit(TokenUsageUpdated(TokenUsage(1_000_000, 0)))
        return RunResult(output="ok")


async def test_a_provider_without_model_for_takes_the_run_option() -> None:
    run, events = await run_plain(Plain(), model="m-1")
    assert payloads(events, RunStarted) == [RunStarted("plain", "m-1")]
    assert run.model == "m-1" and run.cost == Cost(2, 2)


async def test_a_model_for_that_refuses_the_run_fails_it() -> None:
    class Picky(Plain):
        def model_for(self, run: asm.RunInput) -> str | None:
            raise AsmError("invalid_input", "model 'x' is not one this provider runs; pick another")

    run, _ = await run_plain(Picky(), model="x")
    assert run.status is asm.RunStatus.FAILED
    assert run.error is not None and run.error.code == "invalid_input"
