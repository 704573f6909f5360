"""asm.workflow: what an external workflow engine does with a run's failure."""

from __future__ import annotations

import pytest

from asm import AsmError, InMemorySessionStore, SessionManager
from asm.errors import CODES
from asm.model import ErrorInfo
from asm.providers.scripted import Fail, ScriptedProvider, Stall
from asm.workflow import DECISIONS, DEFAULT_WAIT, Decision, classify, run_step, run_step_sync


def test_every_error_code_asm_raises_has_a_decision() -> None:
    assert set(DECISIONS) == set(CODES)
    assert set(DECISIONS.values()) == {"retry", "failover", "wait_and_retry", "abort", "cancel"}


@pytest.mark.parametrize(
    ("error", "action", "delay"),
    [
        (AsmError("provider_rate_limited", "slow", details={"retry_after": 12}), "wait_and_retry", 12.0),
        (AsmError("provider_rate_limited", "slow"), "wait_and_retry", DEFAULT_WAIT),
        (AsmError("provider_unavailable", "overloaded"), "failover", None),
        (AsmError("provider_quota_exceeded", "out of credit"), "failover", None),
        (AsmError("provider_timeout", "slow answer"), "retry", None),
        (AsmError("provider_timeout", "slow answer", details={"retry_after": 3}), "wait_and_retry", 3.0),
        (AsmError("cancelled", "stopped"), "cancel", None),
        (AsmError("invalid_config", "unknown key"), "abort", None),
        (AsmError("policy_violation", "budget"), "abort", None),
        (AsmError("acme_hiccup", "a plugin's own code", retryable=True), "retry", None),
        (AsmError("acme_refused", "a plugin's own code"), "abort", None),
        (ErrorInfo("queue_full", "full", True), "wait_and_retry", DEFAULT_WAIT),
    ],
)
def test_classify(error: AsmError | ErrorInfo, action: str, delay: float | None) -> None:
    decision = classify(error)
    assert (decision.action, decision.delay) == (action, delay)
    assert decision.reason.startswith(error.code + ": ")


@pytest.mark.parametrize(
    ("script", "timeout", "action"),
    [
        (["done"], None, "complete"),
        ([Fail(AsmError("provider_rate_limited", "slow", details={"retry_after": 5}))], None, "wait_and_retry"),
        ([Fail(AsmError("provider_unavailable", "down"))], None, "failover"),
        ([Fail(AsmError("invalid_input", "bad"))], None, "abort"),
        (["partial", Stall()], 0.05, "retry"),
    ],
)
async def test_run_step_turns_the_run_into_the_engines_next_move(
    script: list[object], timeout: float | None, action: str
) -> None:
    manager = SessionManager(InMemorySessionStore(), provider=ScriptedProvider(script))  # type: ignore[arg-type]
    outcome = await run_step(manager, "step input", timeout=timeout)
    assert outcome.action == action
    if action == "complete":
        assert outcome.output == "done" and outcome.delay is None
    if action == "wait_and_retry":
        assert outcome.delay == 5.0 and outcome.run.error is not None


def test_run_step_sync_opens_a_runtime_for_a_synchronous_engine() -> None:
    outcome = run_step_sync("hello engine", config={"provider": "echo", "store": "memory"})
    assert (outcome.action, outcome.output) == ("complete", "hello engine")


def test_a_decision_is_a_value() -> None:
    assert Decision("retry", "x") == Decision("retry", "x")


def test_the_guide_lists_every_code_with_its_decision() -> None:
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "workflow.md").read_text()
    for code, action in DECISIONS.items():
        category, retryable = CODES[code]
        assert f"| `{code}` | {category} | {'yes' if retryable else 'no'} | `{action}` |" in guide, code
