"""Policies: every limit, cancel and warn, stacking, tool rules both ways, approval, config errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import asm
from asm import AsmError, Event, EventType, RunStatus, SessionManager, TokenUsage
from asm.cost import ModelPrice, Pricing, PricingTable
from asm.events import (
    ApprovalRequested,
    MessageStreamed,
    PolicyViolation,
    RunCancelled,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallStarted,
)
from asm.model import RunInput, RunResult
from asm.policy import LIMIT_NAMES, Limits, Policy, ToolAction, ToolRule, merge_policies
from asm.ports import Emit
from asm.providers.scripted import Delay, ScriptedProvider, Stall
from asm.stores.memory import InMemorySessionStore

T = EventType


async def run_under(
    script: list[Any], *policies: Policy, pricing: Pricing | None = None, plugins: Any = None
) -> tuple[asm.Run, list[Event]]:
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=ScriptedProvider(script), pricing=pricing, plugins=plugins)
    run = await manager.run_once("go", policies=policies, options={"model": "m"})
    return run, list((await store.read_events(run.session_id)).events)


def violations(events: list[Event]) -> list[PolicyViolation]:
    return [e.data for e in events if isinstance(e.data, PolicyViolation)]


def usage(i: int = 0, o: int = 0) -> TokenUsageUpdated:
    return TokenUsageUpdated(TokenUsage(input_tokens=i, output_tokens=o))


def tool(name: str, call_id: str = "t1") -> ToolCallStarted:
    return ToolCallStarted(call_id, name, {"arg": 1})


@pytest.mark.parametrize(
    ("limits", "script", "limit"),
    [
        (Limits(max_total_tokens=100), [usage(60, 30), usage(5, 6), "after", Stall()], "max_total_tokens"),
        (Limits(max_input_tokens=50), [usage(51, 0), "after", Stall()], "max_input_tokens"),
        (Limits(max_output_tokens=10), [usage(0, 11), "after", Stall()], "max_output_tokens"),
        (Limits(max_tool_calls=1), [tool("a", "1"), tool("b", "2"), "after", Stall()], "max_tool_calls"),
        (Limits(max_cost_usd="0.001"), [usage(400, 0), usage(200, 0), "after", Stall()], "max_cost_usd"),
        (Limits(max_duration_s=0.05), ["before", Stall()], "max_duration_s"),
    ],
)
async def test_each_limit_cancels_the_run_in_the_policys_name(limits: Limits, script: list[Any], limit: str) -> None:
    pricing = Pricing([PricingTable("t", "", {"m": ModelPrice(input=2, output=8)})])
    run, events = await run_under(script, Policy("budget", limits), pricing=pricing)
    assert run.status is RunStatus.CANCELLED
    (violation,) = violations(events)
    assert (violation.policy, violation.kind, violation.action) == ("budget", "budget_exceeded", "cancel")
    assert violation.details["limit"] == limit
    kinds = [e.type for e in events]
    assert kinds.index(T.POLICY_VIOLATION) < kinds.index(T.RUN_CANCELLED)
    cancelled = next(e.data for e in events if isinstance(e.data, RunCancelled))
    assert cancelled.reason == "budget"
    assert MessageStreamed("after") not in [e.data for e in events]  # stopped at the violation


async def test_warn_reports_once_and_lets_the_run_finish() -> None:
    policy = Policy("soft", Limits(max_total_tokens=10), on_violation="warn")
    run, events = await run_under([usage(8, 8), usage(5, 5), "done"], policy)
    assert run.status is RunStatus.COMPLETED and run.output == "done"
    assert [(v.policy, v.action) for v in violations(events)] == [("soft", "warn")]


async def test_a_denied_tool_from_a_cli_style_provider_cancels_at_tool_call_started() -> None:
    policy = Policy("safe", tool_rules=(ToolRule("rm*", "deny"),))
    run, events = await run_under([tool("read_file", "1"), tool("rm_rf", "2"), "after", Stall()], policy)
    assert run.status is RunStatus.CANCELLED
    (violation,) = violations(events)
    assert (violation.kind, violation.details["tool_name"]) == ("tool_denied", "rm_rf")


class ToolLoopProvider:
    """Runs its own tools, asking asm first, as the API providers do."""

    name = "tool-loop"

    def __init__(self, tools: list[str], default: str = "allow") -> None:
        self.tools = tools
        self.default = default
        self.executed: list[str] = []

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities(tools=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        for index, name in enumerate(self.tools):
            call_id = f"call-{index}"
            if await emit.authorize_tool(call_id, name, {"n": index}, default=self.default):
                await emit(ToolCallStarted(call_id, name, {"n": index}))
                self.executed.append(name)
                await emit(ToolCallCompleted(call_id, name, "ok"))
        return RunResult(output=",".join(self.executed))


async def test_a_denied_tool_never_executes_where_asm_is_asked_first() -> None:
    provider = ToolLoopProvider(["read", "delete_all", "write"])
    store = InMemorySessionStore()
    policy = Policy("safe", tool_rules=(ToolRule("delete_*", "deny"),))
    run = await SessionManager(store, provider=provider, policies=[policy]).run_once("go")
    assert run.status is RunStatus.COMPLETED and provider.executed == ["read", "write"]
    events = list((await store.read_events(run.session_id)).events)
    (violation,) = violations(events)
    assert (violation.kind, violation.action, violation.details["tool_name"]) == ("tool_denied", "denied", "delete_all")


class Approver:
    def __init__(self, answer: bool | None, *, hang: bool = False) -> None:
        self.answer, self.hang = answer, hang
        self.asked: list[str] = []

    @asm.hookimpl
    async def asm_approve_tool(self, request: ApprovalRequested) -> bool | None:
        self.asked.append(request.tool_name)
        if self.hang:
            await trio_sleep_forever()
        return self.answer


async def trio_sleep_forever() -> None:
    import trio

    await trio.sleep_forever()


@pytest.mark.parametrize(("answer", "executed"), [(True, ["bash"]), (False, [])])
async def test_ask_rules_go_to_the_approval_hook(answer: bool, executed: list[str]) -> None:
    approver = Approver(answer)
    provider = ToolLoopProvider(["bash"])
    manager = SessionManager(
        InMemorySessionStore(),
        provider=provider,
        policies=[Policy("p", tool_rules=(ToolRule("bash", "ask"),))],
        plugins=asm.load_plugins(entry_points=False, extra=[approver]),
    )
    await manager.run_once("go")
    assert approver.asked == ["bash"] and provider.executed == executed


async def test_no_answer_within_the_approval_timeout_is_a_denial() -> None:
    store = InMemorySessionStore()
    provider = ToolLoopProvider(["bash"], default="ask")
    manager = SessionManager(
        store,
        provider=provider,
        approval_timeout=0.05,
        plugins=asm.load_plugins(entry_points=False, extra=[Approver(True, hang=True)]),
    )
    run = await manager.run_once("go")
    assert provider.executed == [] and run.status is RunStatus.COMPLETED
    denied = [e.data for e in (await store.read_events(run.session_id, types=[T.APPROVAL_DENIED])).events]
    assert len(denied) == 1 and "no answer within 0.05s" in (denied[0].reason or "")  # type: ignore[attr-defined]


async def test_permission_mode_deny_all_refuses_even_allowed_tools() -> None:
    provider = ToolLoopProvider(["read"], default="deny")
    policy = Policy("p", tool_rules=(ToolRule("read", "allow"),))
    await SessionManager(InMemorySessionStore(), provider=provider, policies=[policy]).run_once("go")
    assert provider.executed == []


def test_an_allow_list_denies_what_it_does_not_name() -> None:
    policy = Policy("p", tool_rules=(ToolRule("read_*", "allow"), ToolRule("read_secrets", "deny")))
    assert policy.tool_action("read_file") is ToolAction.ALLOW
    assert policy.tool_action("read_secrets") is ToolAction.DENY
    assert policy.tool_action("bash") is ToolAction.DENY
    assert Policy("q", tool_rules=(ToolRule("bash", "ask"),)).tool_action("read") is None


async def test_runtime_session_and_run_policies_stack() -> None:
    store = InMemorySessionStore()
    manager = SessionManager(
        store,
        provider=ScriptedProvider([usage(30, 0), usage(30, 0), usage(30, 0), "end"]),
        policies=[Policy("runtime", Limits(max_total_tokens=1000))],
    )
    session = await manager.start_session(
        policies=[Policy("session", Limits(max_total_tokens=50), on_violation="warn")]
    )
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "go")
    done = await manager.execute_run(run.id, policies=[Policy("run", Limits(max_total_tokens=80))])
    # The session's 50 is the tightest limit; the run's cancel beats the session's warn.
    assert done.status is RunStatus.CANCELLED
    (violation,) = violations(list((await store.read_events(session.id)).events))
    assert (violation.policy, violation.action, violation.details["bound"]) == ("session", "cancel", "50")


names = st.sampled_from(["read", "read_file", "bash", "rm", "rm_rf", "write"])
rules = st.builds(
    ToolRule, st.sampled_from(["read*", "rm*", "bash", "*", "w?ite", "[rb]*"]), st.sampled_from(list(ToolAction))
)
limit_values = st.none() | st.integers(min_value=0, max_value=1000)
policies = st.builds(
    Policy,
    name=st.sampled_from(["a", "b", "c"]),
    limits=st.builds(Limits, max_total_tokens=limit_values, max_tool_calls=limit_values),
    tool_rules=st.lists(rules, max_size=3).map(tuple),
    on_violation=st.sampled_from(["cancel", "warn"]),
)


@given(st.lists(policies, min_size=1, max_size=4), names)
def test_merging_is_tightest_limit_strictest_rule_and_cancel_over_warn(stack: list[Policy], tool_name: str) -> None:
    merged = merge_policies(stack)
    assert merged is not None
    for key in ("max_total_tokens", "max_tool_calls"):
        values = [getattr(p.limits, key) for p in stack if getattr(p.limits, key) is not None]
        assert getattr(merged.limits, key) == (min(values) if values else None)
    decisions = [a for a in (p.tool_action(tool_name) for p in stack) if a is not None]
    expected = max(decisions, key=lambda a: a.strictness) if decisions else None
    assert merged.tool_action(tool_name) is expected
    assert merged.on_violation == ("cancel" if any(p.on_violation == "cancel" for p in stack) else "warn")
    # Stacking is order-free and merging merged policies changes nothing.
    assert merge_policies(reversed(stack)).limits == merged.limits  # type: ignore[union-attr]
    again = merge_policies([merged])
    assert again is not None and again.tool_action(tool_name) is expected


async def test_policies_from_config_apply_to_every_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "asm.toml").write_text('[policies.budget]\nmax_total_tokens = 5\ndeny = ["rm*"]\n')
    async with asm.open_runtime(store="memory") as runtime:
        run = await runtime.run_once("go", provider=ScriptedProvider([usage(3, 3), Delay(0.01), "x", Stall()]))
    assert run.status is RunStatus.CANCELLED and run.error is not None and "budget" in run.error.message


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"max_total_tokens": -1}, "policies.p.max_total_tokens"),
        ({"max_cost_usd": "a lot"}, "policies.p.max_cost_usd"),
        ({"max_duration_s": "1h"}, "policies.p.max_duration_s"),
        ({"max_tokens": 5}, "unknown key(s) max_tokens"),
        ({"deny": ["rm[*"]}, "not a valid glob"),
        ({"deny": "rm*"}, "must be a list"),
        ({"on_violation": "explode"}, "policies.p.on_violation"),
    ],
)
def test_bad_policy_config_names_the_key_and_where_it_came_from(table: dict[str, Any], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        asm.assemble(asm.load_config({f"policies.p.{k}": v for k, v in table.items()}, env={}, user_file="/none"))
    assert caught.value.code == "invalid_config"
    assert fragment in caught.value.message and "argument" in caught.value.message


class RegistersPolicy:
    @asm.hookimpl
    def asm_register_policies(self, register: Any) -> None:
        register("house-rules", lambda config: Policy("house-rules", Limits(max_tool_calls=config.get("calls", 0))))


async def test_a_plugin_policy_is_used_by_name_with_its_config_table() -> None:
    registry = asm.load_plugins(entry_points=False, extra=[RegistersPolicy()])
    config = asm.load_config({"policies.house-rules.calls": 1, "store": "memory"}, env={}, user_file="/none")
    async with asm.open_runtime(config, registry=registry) as runtime:
        run = await runtime.run_once("go", provider=ScriptedProvider([tool("a", "1"), tool("b", "2"), Stall()]))
    assert run.status is RunStatus.CANCELLED and run.error is not None and "house-rules" in run.error.message


def test_limits_reject_bad_values() -> None:
    assert set(LIMIT_NAMES) == {
        "max_total_tokens", "max_input_tokens", "max_output_tokens", "max_tool_calls", "max_duration_s", "max_cost_usd",
    }  # fmt: skip
    for bad in ({"max_total_tokens": 1.5}, {"max_tool_calls": True}, {"max_duration_s": -1}, {"max_cost_usd": -1}):
        with pytest.raises(AsmError) as caught:
            Limits(**bad)
        assert caught.value.code == "validation_error"
    assert Limits(max_cost_usd=0.5).max_cost_usd == Decimal("0.5")


def test_plain_tool_names_are_handed_to_cli_flags_and_globs_are_not() -> None:
    from asm.policy import cli_tool_lists

    a = Policy("a", tool_rules=(ToolRule("Read", "allow"), ToolRule("Edit", "allow"), ToolRule("rm*", "deny")))
    b = Policy("b", tool_rules=(ToolRule("Edit", "allow"), ToolRule("WebFetch", "deny")))
    assert cli_tool_lists(merge_policies([a, b])) == (("WebFetch",), ("Edit",))
    assert cli_tool_lists(Policy("c", tool_rules=(ToolRule("read_*", "allow"),))) == ((), None)
    assert cli_tool_lists(None) == ((), None)


async def test_the_provider_sees_the_runs_tool_lists() -> None:
    seen: list[RunInput] = []

    class Recorder:
        name = "recorder"

        def capabilities(self) -> asm.Capabilities:
            return asm.Capabilities()

        async def execute(self, run: RunInput, emit: Emit) -> RunResult:
            seen.append(run)
            return RunResult(output="ok")

    policy = Policy("p", tool_rules=(ToolRule("WebFetch", "deny"),))
    await SessionManager(InMemorySessionStore(), provider=Recorder(), policies=[policy]).run_once("go")
    assert seen[0].denied_tools == ("WebFetch",) and seen[0].allowed_tools is None


class ApiStyleProvider:
    """Emits tool_call_started as the model's tool call streams in, then runs it through
    asm.tools.execute_tool_call (which asks authorize_tool), as the API providers do."""

    name = "api-style"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities(tools=True, authorizes_tools=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        from asm.tools import Tool, execute_tool_call

        def delete_all() -> str:
            self.ran.append("delete_all")
            return "gone"

        tools = {"delete_all": Tool.from_function(delete_all)}
        await emit(ToolCallStarted("t1", "delete_all", {}))
        outcome = await execute_tool_call(tools, "t1", "delete_all", {}, emit=emit, permission_mode="accept_all")
        return RunResult(output=outcome.content)


async def test_a_provider_that_authorizes_its_tools_is_not_cancelled_but_refused() -> None:
    provider = ApiStyleProvider()
    store = InMemorySessionStore()
    policy = Policy("safe", tool_rules=(ToolRule("delete_*", "deny"),))
    run = await SessionManager(store, provider=provider, policies=[policy]).run_once("clean up")
    assert run.status is RunStatus.COMPLETED and provider.ran == []
    assert run.output == "permission to run tool 'delete_all' was denied"  # what the model is told
    events = list((await store.read_events(run.session_id)).events)
    (violation,) = violations(events)
    assert (violation.kind, violation.action) == ("tool_denied", "denied")
    assert T.TOOL_CALL_FAILED in [e.type for e in events]


@pytest.mark.parametrize(
    ("provider", "policy"),
    [
        # The violating usage is the provider's last emit: nothing after it would notice the cancel.
        (ScriptedProvider.from_text("a fairly long answer " * 10), Policy("budget", Limits(max_total_tokens=5))),
        (
            ScriptedProvider([tool("read_file", "1"), tool("rm_rf", "2")]),
            Policy("safe", tool_rules=(ToolRule("rm*", "deny"),)),
        ),
    ],
    ids=["usage", "denied-tool"],
)
async def test_a_cancelling_violation_ends_the_run_cancelled_even_as_the_providers_last_emit(
    provider: ScriptedProvider, policy: Policy
) -> None:
    store = InMemorySessionStore()
    run = await SessionManager(store, provider=provider).run_once("go", policies=[policy])
    events = list((await store.read_events(run.session_id)).events)
    assert run.status is RunStatus.CANCELLED
    assert run.error is not None and run.error.code == "cancelled"
    kinds = [e.type for e in events]
    assert T.RUN_COMPLETED not in kinds and T.SESSION_COMPLETED not in kinds
    assert kinds.index(T.POLICY_VIOLATION) < kinds.index(T.RUN_CANCELLED)
    assert next(e.data for e in events if isinstance(e.data, RunCancelled)).reason == policy.name


class UsageOnlyInResult:
    """Reports its tokens only in the result, as some providers do."""

    name = "result-usage"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        await emit(MessageStreamed("answer"))
        return RunResult(output="answer", usage=TokenUsage(input_tokens=40, output_tokens=30))


@pytest.mark.parametrize(("action", "status"), [("cancel", RunStatus.CANCELLED), ("warn", RunStatus.COMPLETED)])
async def test_usage_reported_only_in_the_result_is_checked_before_the_run_completes(
    action: str, status: RunStatus
) -> None:
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=UsageOnlyInResult())
    policy = Policy("budget", Limits(max_total_tokens=50), on_violation=action)
    run = await manager.run_once("go", policies=[policy])
    events = list((await store.read_events(run.session_id)).events)
    assert run.status is status
    (violation,) = violations(events)
    assert (violation.details["limit"], violation.details["actual"]) == ("max_total_tokens", "70")
    assert run.usage == TokenUsage(input_tokens=40, output_tokens=30)
