"""Budgets and tool rules enforced live: a policy cancels a run the moment it is broken.

Run: python examples/policy_enforcement.py (offline).
"""

from __future__ import annotations

import trio

import asm
from asm.events import PolicyViolation, TokenUsageUpdated, ToolCallStarted
from asm.policy import Limits, Policy, ToolRule
from asm.providers.scripted import ScriptedProvider, Stall


async def main() -> None:
    store = asm.InMemorySessionStore()
    budget = Policy("budget", Limits(max_total_tokens=1_000, max_tool_calls=5))
    safety = Policy("safety", tool_rules=(ToolRule("rm*", "deny"), ToolRule("bash", "ask")), on_violation="cancel")
    manager = asm.SessionManager(store, policies=[budget, safety])  # runtime-level: every run

    # 1. A run that spends more tokens than the budget allows is cancelled at that event.
    greedy = ScriptedProvider(["thinking...", TokenUsageUpdated(asm.TokenUsage(800, 400)), "more", Stall()])
    run = await manager.run_once("summarise the repo", provider=greedy)
    violation = next(e.data for e in (await store.read_events(run.session_id)).events if e.type == "policy_violation")
    assert isinstance(violation, PolicyViolation)
    print(f"1. {run.status}: {violation.policy} {violation.kind} {violation.details}")
    assert run.status is asm.RunStatus.CANCELLED and violation.policy == "budget"

    # 2. A provider that runs its own tools (a CLI) starts a denied one: cancelled there.
    reckless = ScriptedProvider([ToolCallStarted("t1", "rm_rf", {"path": "/"}), "deleted", Stall()])
    run = await manager.run_once("clean up", provider=reckless)
    print(f"2. {run.status}: {run.error.message if run.error else ''}")
    assert run.status is asm.RunStatus.CANCELLED

    # 3. A run-level policy that only warns: the run finishes, the violation is on record.
    # (Stacked on the cancelling policies above it would cancel: "cancel" beats "warn".)
    watcher = Policy("watch", Limits(max_output_tokens=10), on_violation="warn")
    chatty = ScriptedProvider(["long answer", TokenUsageUpdated(asm.TokenUsage(5, 50))])
    run = await asm.SessionManager(store).run_once("explain", provider=chatty, policies=[watcher])
    kinds = [e.type.value for e in (await store.read_events(run.session_id)).events]
    print(f"3. {run.status} with {kinds.count('policy_violation')} warning")
    assert run.status is asm.RunStatus.COMPLETED and "policy_violation" in kinds


if __name__ == "__main__":
    trio.run(main)
