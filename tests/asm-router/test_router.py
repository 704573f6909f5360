"""The router provider with scripted members: selection, failover, breakers, stickiness, budget."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
from asm_router import RouterOptions, RouterProvider, pick_weighted
from hypothesis import given
from hypothesis import strategies as st

from asm import (
    AsmError,
    Capabilities,
    RunInput,
    RunResult,
    RunStatus,
    SessionManager,
    assemble,
    load_config,
    open_runtime,
)
from asm.cost import ModelPrice, Pricing, PricingTable
from asm.events import (
    CircuitHalfOpen,
    CircuitOpened,
    EventData,
    MessageStreamed,
    RouteFailedOver,
    RouteSelected,
    RouteSkip,
    TokenUsageUpdated,
)
from asm.hookspecs import Register, hookimpl
from asm.model import TokenUsage
from asm.plugins import load_plugins
from asm.policy import Limits, Policy
from asm.ports import Emit
from asm.providers.scripted import Crash, Fail, ScriptedProvider, Stall
from asm.stores.memory import InMemorySessionStore


class Clock:
    """The router's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Member:
    """A member whose behaviour a test switches: ``ok``, ``fail`` (retryable) or ``block``
    (until ``release`` is set, then ok); it counts its runs."""

    def __init__(
        self,
        name: str,
        mode: str = "ok",
        *,
        capabilities: Capabilities | None = None,
        clock: Clock | None = None,
        latency: float = 0.0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.latency = latency
        self.mode = mode
        self.calls = 0
        self.started = trio.Event()
        self.release = trio.Event()
        self._capabilities = capabilities or Capabilities()

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def model_for(self, run: RunInput) -> str:
        return f"{self.name}-model"

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        self.calls += 1
        self.started.set()
        if self.mode == "fail":
            raise AsmError("provider_unavailable", f"{self.name} is overloaded (529)")
        if self.mode == "block":
            await self.release.wait()
        if self.clock is not None:
            self.clock.advance(self.latency)  # the time to its first event, on the router's clock
        await emit(MessageStreamed(f"from {self.name}"))
        await emit(TokenUsageUpdated(TokenUsage(10, 5)))
        return RunResult(output=f"from {self.name}", stop_reason="end_turn")


def make_router(members: dict[str, Any], clock: Clock | None = None, **options: Any) -> RouterProvider:
    return RouterProvider(
        members,
        RouterOptions(members=list(members), **options),
        name="smart",
        clock=clock or Clock(),
        rng=random.Random(7),
    )


async def run_through(
    router: RouterProvider, manager: SessionManager | None = None, **kwargs: Any
) -> tuple[Any, list[EventData]]:
    manager = manager or SessionManager(InMemorySessionStore(), provider=router)
    run = await manager.run_once("hello", **kwargs)
    page = await manager.store.read_events(run.session_id, run_id=run.id)
    return run, [event.data for event in page.events]


def of(kind: type[Any], events: list[EventData]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# -- failover -----------------------------------------------------------------------------------


async def test_a_retryable_failure_before_output_fails_over_to_the_next_member() -> None:
    a, b = Member("a", "fail"), Member("b")
    run, events = await run_through(make_router({"a": a, "b": b}))
    assert run.status is RunStatus.COMPLETED and run.output == "from b"
    first, second = of(RouteSelected, events)
    assert (first.member, first.reason, first.attempt, first.model) == ("a", "preferred", 1, "a-model")
    assert (second.member, second.attempt, second.skipped) == (
        "b",
        2,
        (RouteSkip("a", "tried", "failed earlier in this run"),),
    )
    (over,) = of(RouteFailedOver, events)
    assert (over.router, over.member, over.attempt, over.error_code) == ("smart", "a", 1, "provider_unavailable")
    types = [type(e).__name__ for e in events]
    assert types.index("RouteFailedOver") < types.index("MessageStreamed")
    assert run.result.metadata["router"] == {"router": "smart", "member": "b", "attempts": 2}
    assert run.model == "b-model", "usage reported without a model is priced on the member's"


async def test_a_non_retryable_failure_ends_the_run_without_failover() -> None:
    b = Member("b")
    denied = ScriptedProvider([Fail(AsmError("provider_authentication_failed", "bad key"))], name="a")
    run, events = await run_through(make_router({"a": denied, "b": b}))
    assert run.status is RunStatus.FAILED and run.error.code == "provider_authentication_failed"
    assert b.calls == 0 and not of(RouteFailedOver, events)


async def test_no_failover_once_the_member_has_emitted_output() -> None:
    b = Member("b")
    partial = ScriptedProvider(["partial answer", Fail(AsmError("provider_unavailable", "connection reset"))], name="a")
    run, events = await run_through(make_router({"a": partial, "b": b}))
    assert run.status is RunStatus.FAILED and run.error.code == "provider_unavailable"
    assert b.calls == 0 and not of(RouteFailedOver, events)


async def test_a_member_that_crashes_fails_the_run_as_provider_error_without_failover() -> None:
    b = Member("b")
    buggy = ScriptedProvider([Crash(KeyError("oops"))], name="a")
    run, _ = await run_through(make_router({"a": buggy, "b": b}))
    assert run.status is RunStatus.FAILED and run.error.code == "provider_error" and not run.error.retryable
    assert "member 'a' crashed: KeyError('oops')" in run.error.message
    assert b.calls == 0


async def test_attempts_are_capped_by_max_attempts() -> None:
    a, b, c = Member("a", "fail"), Member("b", "fail"), Member("c")
    run, events = await run_through(make_router({"a": a, "b": b, "c": c}, max_attempts=2))
    assert run.status is RunStatus.FAILED and run.error.code == "provider_unavailable"
    assert "b is overloaded" in run.error.message
    assert (a.calls, b.calls, c.calls) == (1, 1, 0)
    assert len(of(RouteFailedOver, events)) == 1


async def test_cancel_run_cancels_the_member_in_flight_and_nothing_fails_over() -> None:
    stalled, b = ScriptedProvider([Stall()], name="a"), Member("b")
    manager = SessionManager(InMemorySessionStore(), provider=make_router({"a": stalled, "b": b}))
    session = await manager.start_session(agent_id="t")
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "hello")
    selected = trio.Event()

    def watch(event: Any) -> None:
        if isinstance(event.data, RouteSelected):
            selected.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: manager.execute_run(run.id, on_event=watch))
        await selected.wait()
        await manager.cancel_run(run.id, reason="user")
    final = await manager.get_run(run.id)
    assert final.status is RunStatus.CANCELLED and b.calls == 0


class CancelledAsRetryable:
    """A member that turns its cancellation into a retryable error, as a careless SDK wrapper might."""

    name = "a"

    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise AsmError("provider_unavailable", "connection closed") from None
        raise AssertionError("unreachable")


async def test_a_policy_cancel_stands_even_if_the_member_answers_it_with_a_retryable_error() -> None:
    b = Member("b")
    router = make_router({"a": CancelledAsRetryable(), "b": b})
    manager = SessionManager(InMemorySessionStore(), provider=router)
    run, events = await run_through(router, manager, policies=[Policy("short", Limits(max_duration_s=0.01))])
    assert run.status is RunStatus.CANCELLED and b.calls == 0
    assert not of(RouteFailedOver, events)


# -- the circuit breaker ------------------------------------------------------------------------


async def test_the_breaker_cycle_closed_open_half_open_open_half_open_closed() -> None:
    clock = Clock()
    a, b = Member("a", "fail"), Member("b")
    router = make_router(
        {"a": a, "b": b}, clock, failure_threshold=2, failure_window=10, cooldown=5, max_cooldown=8, sticky_ttl=0
    )
    _, events = await run_through(router)
    assert not of(CircuitOpened, events)
    clock.advance(1)
    _, events = await run_through(router)
    (opened,) = of(CircuitOpened, events)
    assert (opened.member, opened.model, opened.failures, opened.cooldown_s) == ("a", "a-model", 2, 5.0)
    (circuit,) = router.status().members[0].circuits
    assert (circuit.state.value, circuit.retry_in_s) == ("open", 5.0)

    clock.advance(4.9)  # still cooling down: a is passed over, b serves
    _, events = await run_through(router)
    (selected,) = of(RouteSelected, events)
    assert selected.member == "b" and selected.skipped[0].member == "a"
    assert selected.skipped[0].reason == "circuit_open" and a.calls == 2

    clock.advance(0.1)  # the cooldown is over: one probe, which fails -> open again, longer
    _, events = await run_through(router)
    (half,) = of(CircuitHalfOpen, events)
    assert half.member == "a" and of(RouteSelected, events)[0].reason == "probe"
    (reopened,) = of(CircuitOpened, events)
    assert reopened.cooldown_s == 8.0, "5 s x 2 = 10 s, capped at max_cooldown = 8 s"

    clock.advance(7)
    _, events = await run_through(router)
    assert of(RouteSelected, events)[0].member == "b" and a.calls == 3

    clock.advance(1)
    a.mode = "ok"
    run, events = await run_through(router)
    assert run.output == "from a"
    assert [type(e).__name__ for e in events if type(e).__name__.startswith("Circuit")] == [
        "CircuitHalfOpen",
        "CircuitClosed",
    ]
    (circuit,) = router.status().members[0].circuits
    assert (circuit.state.value, circuit.failures, circuit.cooldown_s) == ("closed", 0, 5.0)


async def test_failures_outside_the_sliding_window_do_not_open_the_circuit() -> None:
    clock = Clock()
    a, b = Member("a", "fail"), Member("b")
    router = make_router({"a": a, "b": b}, clock, failure_threshold=2, failure_window=10, sticky_ttl=0)
    await run_through(router)
    clock.advance(10.5)
    _, events = await run_through(router)
    assert not of(CircuitOpened, events)
    assert router.status().members[0].circuits[0].failures == 1


async def test_exactly_one_probe_goes_through_half_open_under_50_concurrent_runs() -> None:
    clock = Clock()
    a, b = Member("a", "fail"), Member("b")
    router = make_router({"a": a, "b": b}, clock, failure_threshold=1, cooldown=5, sticky_ttl=0)
    manager = SessionManager(InMemorySessionStore(), provider=router)
    await manager.run_once("open a's circuit")
    assert router.status().members[0].circuits[0].state.value == "open"
    clock.advance(5)
    a.mode, a.calls, a.started, b.calls = "block", 0, trio.Event(), 0
    runs: list[Any] = []

    async def one() -> None:
        runs.append(await manager.run_once("hello"))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(one)
        await a.started.wait()
        # Every other run passes a over while its probe is in flight and finishes on b.
        while len(runs) < 49:
            await trio.lowlevel.checkpoint()
        assert (a.calls, b.calls) == (1, 49)
        a.release.set()
    assert all(run.status is RunStatus.COMPLETED for run in runs)
    assert sorted(Counter(run.output for run in runs).items()) == [("from a", 1), ("from b", 49)]
    halves = 0
    skipped_for_probe = 0
    for run in runs:
        for event in (await manager.store.read_events(run.session_id)).events:
            halves += isinstance(event.data, CircuitHalfOpen)
            if isinstance(event.data, RouteSelected):
                skipped_for_probe += any(s.reason == "probe_in_flight" for s in event.data.skipped)
    assert (halves, skipped_for_probe) == (1, 49)
    assert router.status().members[0].circuits[0].state.value == "closed"


async def test_circuits_are_per_member_and_model() -> None:
    clock = Clock()
    flaky = ScriptedProvider([Fail(AsmError("provider_unavailable", "overloaded"))], name="a", model="big")
    router = make_router({"a": flaky, "b": Member("b")}, clock, failure_threshold=1, sticky_ttl=0)
    await run_through(router, options={"model": "big"})
    _, events = await run_through(router, options={"model": "small"})
    assert of(RouteSelected, events)[0].member == "a", "the circuit of a on 'small' is still closed"
    states = {c.model: c.state.value for c in router.status().members[0].circuits}
    assert states == {"big": "open", "small": "open"}


# -- stickiness ---------------------------------------------------------------------------------


async def test_a_session_keeps_its_member_while_healthy_until_the_ttl_expires() -> None:
    clock = Clock()
    a, b = Member("a", "fail"), Member("b")
    router = make_router({"a": a, "b": b}, clock, sticky_ttl=60, failure_threshold=5)
    manager = SessionManager(InMemorySessionStore(), provider=router)
    session = await manager.start_session(agent_id="t")
    await manager.activate_session(session.id)

    async def run_in_session() -> tuple[str, list[RouteSelected]]:
        run = await manager.start_run(session.id, "hello")
        run = await manager.execute_run(run.id)
        page = await manager.store.read_events(session.id, run_id=run.id)
        return run.output, [e.data for e in page.events if isinstance(e.data, RouteSelected)]

    assert (await run_in_session())[0] == "from b"  # a failed over to b: b now serves the session
    a.mode = "ok"
    clock.advance(59)
    output, (selected,) = await run_in_session()
    assert (output, selected.reason) == ("from b", "sticky")
    assert router.status().sticky_sessions == 1
    clock.advance(60.5)  # 60 s since it was last served: the preference order again
    output, (selected,) = await run_in_session()
    assert (output, selected.reason) == ("from a", "preferred")


async def test_a_session_leaves_its_member_when_that_member_fails() -> None:
    clock = Clock()
    a, b = Member("a"), Member("b")
    router = make_router({"b": b, "a": a}, clock, sticky_ttl=600)
    manager = SessionManager(InMemorySessionStore(), provider=router)
    session = await manager.start_session(agent_id="t")
    await manager.activate_session(session.id)
    run = await manager.execute_run((await manager.start_run(session.id, "one")).id)
    assert run.output == "from b"
    b.mode = "fail"
    run = await manager.execute_run((await manager.start_run(session.id, "two")).id)
    assert run.output == "from a"
    b.mode = "ok"
    run = await manager.execute_run((await manager.start_run(session.id, "three")).id)
    assert run.output == "from a", "a served last: the session sticks to a now"


# -- weighted selection -------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=6))
def test_weighted_pick_gives_each_member_its_share_of_the_draws(scores: list[float]) -> None:
    draws = 2000
    counts = Counter(pick_weighted(scores, (i + 0.5) / draws) for i in range(draws))
    total = sum(scores)
    for index, score in enumerate(scores):
        # Evenly spaced draws: each index gets its share, give or take the draws at its two edges.
        assert abs(counts[index] - draws * score / total) <= 2


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=6), st.floats(0, 1, exclude_max=True))
def test_weighted_pick_never_picks_a_zero_score_unless_all_are_zero(scores: list[float], u: float) -> None:
    index = pick_weighted(scores, u)
    assert 0 <= index < len(scores)
    assert scores[index] > 0 or not any(scores)


async def test_weighted_routing_follows_weight_health_and_latency() -> None:
    clock = Clock()
    a = Member("a", clock=clock)
    router = make_router({"a": a, "b": Member("b")}, clock, strategy="weighted", weights={"a": 3, "b": 1})
    manager = SessionManager(InMemorySessionStore(), provider=router)
    outputs = Counter([(await manager.run_once("hi")).output for _ in range(400)])
    assert 0.68 <= outputs["from a"] / 400 <= 0.82, outputs  # 3 : 1, seeded
    a.latency = 3.0  # a slow member (3 s to first event) scores 3 x 1/(1+3) = 0.75 against b's 1
    outputs = Counter([(await manager.run_once("hi")).output for _ in range(400)])
    assert 0.35 <= outputs["from a"] / 400 <= 0.51, outputs


# -- budget and capabilities --------------------------------------------------------------------


PRICES = Pricing(
    [
        PricingTable(
            "test", "2026-12-01", {"a-model": ModelPrice(input=15, output=75), "b-model": ModelPrice(0.25, 1.25)}
        )
    ]
)


async def test_a_member_whose_estimate_exceeds_the_budget_left_is_skipped() -> None:
    router = make_router({"a": Member("a"), "b": Member("b")})
    budget = Policy("budget", Limits(max_cost_usd="0.05"))
    manager = SessionManager(InMemorySessionStore(), provider=router, pricing=PRICES, policies=[budget])
    # 4096 output tokens at $75/M is $0.31 on a, $0.005 on b.
    run, events = await run_through(router, manager)
    assert run.output == "from b"
    (selected,) = of(RouteSelected, events)
    (skip,) = selected.skipped
    assert (skip.member, skip.reason) == ("a", "over_budget")
    assert "estimated $0.3072 on a-model (2 in, 4096 out) > $0.0500 left" in skip.detail
    run, events = await run_through(router, manager, options={"max_tokens": 100})
    assert run.output == "from a", "100 output tokens on a cost $0.0075: within the budget"


async def test_every_member_over_budget_fails_the_run_saying_so() -> None:
    router = make_router({"a": Member("a"), "b": Member("b")})
    budget = Policy("budget", Limits(max_cost_usd="0.001"))
    manager = SessionManager(InMemorySessionStore(), provider=router, pricing=PRICES, policies=[budget])
    run, _ = await run_through(router, manager)
    assert run.status is RunStatus.FAILED and run.error.code == "policy_violation"
    assert "every member would exceed the run's cost budget" in run.error.message


async def test_without_a_cost_limit_nothing_is_skipped_for_cost() -> None:
    router = make_router({"a": Member("a"), "b": Member("b")})
    manager = SessionManager(InMemorySessionStore(), provider=router, pricing=PRICES)
    run, events = await run_through(router, manager)
    assert run.output == "from a" and of(RouteSelected, events)[0].skipped == ()


async def test_required_capabilities_filter_the_members() -> None:
    plain, tools = Member("plain"), Member("tools", capabilities=Capabilities(tools=True))
    thinking = Member("thinking", capabilities=Capabilities(thinking=True))
    router = make_router({"plain": plain, "tools": tools, "thinking": thinking})
    assert router.capabilities().tools and router.capabilities().thinking
    run, events = await run_through(router, required_capabilities=["tools"])
    assert run.output == "from tools"
    skipped = {(s.member, s.reason, s.detail) for s in of(RouteSelected, events)[0].skipped}
    assert skipped == {
        ("plain", "missing_capability", "lacks tools"),
        ("thinking", "missing_capability", "lacks tools"),
    }
    run, _ = await run_through(router, required_capabilities=["tools", "thinking"])
    assert run.status is RunStatus.FAILED and run.error.code == "missing_required_capability"
    assert "no member has every capability the run requires (tools, thinking)" in run.error.message
    with pytest.raises(AsmError) as refused:
        await run_through(router, required_capabilities=["vision"])
    assert refused.value.code == "missing_required_capability", "the union lacks it: refused before it starts"
    assert plain.calls == 0 and thinking.calls == 0


# -- config: assembled from tables, and every mistake at assembly -------------------------------


class _Plugin:
    """Scripted members registered like a plugin's."""

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        register(
            "flaky", lambda config: ScriptedProvider([Fail(AsmError("provider_unavailable", "down"))], name="flaky")
        )
        register("steady", lambda config: ScriptedProvider(["steady answer"], name="steady"))


def _registry() -> Any:
    return load_plugins(extra=[_Plugin()], env={"ASM_LOAD_PLUGINS": "asm-router"})


async def test_a_router_from_config_builds_its_members_by_name() -> None:
    table = {
        "provider": "smart",
        "store": "memory",
        "providers": {
            "smart": {"plugin": "router", "members": ["flaky", "backup"], "cooldown": 10},
            "backup": {"plugin": "steady"},
        },
    }
    async with open_runtime(load_config(table, env={}, user_file="/nonexistent"), registry=_registry()) as runtime:
        run = await runtime.run_once("hi")
        events = (await runtime.store.read_events(run.session_id)).events
        router = runtime.provider("smart")
    assert run.output == "steady answer" and run.provider == "smart"
    assert [e.data.member for e in events if isinstance(e.data, RouteSelected)] == ["flaky", "backup"]
    assert all(e.provider == "smart" for e in events if e.run_id)
    assert isinstance(router, RouterProvider) and router.name == "smart"


@pytest.mark.parametrize(
    ("providers", "fragment"),
    [
        ({"smart": {"plugin": "router"}}, "router 'smart': has no members"),
        (
            {"smart": {"plugin": "router", "members": ["steddy"]}},
            "member 'steddy' is not a registered provider (installed: echo, flaky, router, scripted, smart, steady); "
            "did you mean 'steady'?",
        ),
        ({"smart": {"plugin": "router", "members": ["smart"]}}, "routers form a cycle (smart -> smart)"),
        (
            {
                "smart": {"plugin": "router", "members": ["steady", "other"]},
                "other": {"plugin": "router", "members": ["smart"]},
            },
            "routers form a cycle (other -> smart -> other)",  # the first instance built names it
        ),
        (
            {"smart": {"plugin": "router", "members": ["steady"], "weights": {"steady": 0}}},
            "weight of 'steady' must be a number > 0, not 0",
        ),
        (
            {"smart": {"plugin": "router", "members": ["steady"], "weights": {"steady": -2.5}}},
            "must be a number > 0, not -2.5",
        ),
        ({"smart": {"plugin": "router", "members": ["steady"], "weights": {"steady": "heavy"}}}, "not 'heavy'"),
        (
            {"smart": {"plugin": "router", "members": ["steady"], "weights": {"flaky": 1}}},
            "weights name 'flaky', which is not a member",
        ),
        (
            {"smart": {"plugin": "router", "members": ["steady"], "cooldown": 0}},
            "cooldown must be a number of seconds > 0, not 0",
        ),
        ({"smart": {"plugin": "router", "members": ["steady"], "cooldown": -1.5}}, "not -1.5"),
        (
            {"smart": {"plugin": "router", "members": ["steady"], "strategy": "random"}},
            "strategy must be 'prefer' or 'weighted'",
        ),
        ({"smart": {"plugin": "router", "members": ["steady"], "max_atempts": 2}}, "unknown option 'max_atempts'"),
        ({"smart": {"plugin": "router", "members": ["steady"], "retry": {"max_retries": -1}}}, "retry: "),
    ],
)
def test_every_mistake_is_one_invalid_config_line_at_assembly(providers: dict[str, Any], fragment: str) -> None:
    table = {"provider": "smart", "store": "memory", "providers": providers}
    with pytest.raises(AsmError) as caught:
        assemble(load_config(table, env={}, user_file="/nonexistent"), registry=_registry())
    assert caught.value.code == "invalid_config"
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith(("[providers.smart] (from ", "[providers.other] (from "))


def test_the_router_imports_no_other_plugin() -> None:
    import asm_router

    source = Path(asm_router.__file__).parent
    imports = {
        line.split()[1].split(".")[0]
        for path in source.glob("*.py")
        for line in path.read_text().splitlines()
        if line.startswith(("import asm_", "from asm_"))
    }
    assert imports == {"asm_router"}


def test_status_is_a_frozen_value() -> None:
    status = make_router({"a": Member("a")}).status()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        status.name = "x"  # type: ignore[misc]


async def test_a_member_is_retried_up_to_its_limit_then_failed_over() -> None:
    from asm.events import RunRetrying

    a, b = Member("a", "fail"), Member("b")
    router = make_router({"a": a, "b": b}, retry={"max_retries": 2, "base_delay": 0, "max_delay": 0})
    run, events = await run_through(router)
    assert run.output == "from b" and a.calls == 3
    story = [type(e).__name__ for e in events if isinstance(e, RouteSelected | RouteFailedOver | RunRetrying)]
    assert story == ["RouteSelected", "RunRetrying", "RunRetrying", "RouteFailedOver", "RouteSelected"]
