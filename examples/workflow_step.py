"""asm runs as the steps of a workflow: a three-step DAG driven by asm.workflow's decisions.

The "engine" here is a loop over steps in dependency order; a real one (Airflow,
Prefect, Temporal) would map the same decisions onto its own retry and failover.
The summarising step is rate limited once (with a retry-after) and then succeeds,
on scripted providers, offline.
"""

from __future__ import annotations

import trio

import asm
from asm.providers.scripted import Fail, ScriptedProvider
from asm.workflow import run_step

RATE_LIMITED = asm.AsmError("provider_rate_limited", "slow down", details={"retry_after": 0.2})


class Flaky:
    """Rate limited on its first call, then answers: a provider on a busy day."""

    name = "flaky"

    def __init__(self, answer: str) -> None:
        self.calls = 0
        self.answer = answer

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: asm.Emit) -> asm.RunResult:
        self.calls += 1
        provider = ScriptedProvider([Fail(RATE_LIMITED)] if self.calls == 1 else [self.answer])
        return await provider.execute(run, emit)


async def main() -> None:
    manager = asm.SessionManager(asm.InMemorySessionStore())
    steps = {
        "fetch": ("fetch ticket T-1", ScriptedProvider(["ticket T-1: the login page is slow"])),
        "summarise": ("summarise the ticket", Flaky("login page latency; assign to web team")),
        "notify": ("draft the reply", ScriptedProvider(["We are on it."])),
    }
    results: dict[str, str] = {}
    for name, (prompt, provider) in steps.items():
        attempt = 1
        while True:
            outcome = await run_step(manager, prompt, provider=provider)
            print(f"{name} (attempt {attempt}): {outcome.action}" + (f" - {outcome.reason}" if outcome.reason else ""))
            if outcome.action == "complete":
                results[name] = outcome.output
                break
            if outcome.action in ("retry", "wait_and_retry") and attempt < 3:
                await trio.sleep(outcome.delay or 0)  # the engine's countdown
                attempt += 1
                continue
            raise SystemExit(f"step {name} gave up: {outcome.action}")
    print(results)
    assert results["summarise"].startswith("login page latency")
    assert isinstance(steps["summarise"][1], Flaky) and steps["summarise"][1].calls == 2


if __name__ == "__main__":
    trio.run(main)
