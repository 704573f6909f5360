"""asm.retry: a provider that fails before any output is tried again, honouring retry_after."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import asm
from asm import AsmError, InMemorySessionStore, SessionManager, load_config, open_runtime
from asm.events import RunRetrying
from asm.model import RunInput, RunResult
from asm.ports import Emit
from asm.retry import RetryingProvider, RetryPolicy, with_retries

RATE_LIMITED = AsmError("provider_rate_limited", "slow down", details={"retry_after": 12})
UNAVAILABLE = AsmError("provider_unavailable", "overloaded")


class Flaky:
    """Fails with each of ``errors`` in turn (before any output), then answers."""

    name = "flaky"

    def __init__(self, *errors: AsmError, output_first: bool = False) -> None:
        self.errors = list(errors)
        self.output_first = output_first
        self.attempts = 0

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        self.attempts += 1
        if self.output_first:
            await emit(asm.events.MessageStreamed("partial"))
        if self.errors:
            raise self.errors.pop(0)
        await emit(asm.events.MessageStreamed("answer"))
        return RunResult(output="answer")


async def run_with(provider: Any, **manager_options: Any) -> tuple[asm.Run, list[asm.Event]]:
    store = InMemorySessionStore()
    run = await SessionManager(store, provider=provider, **manager_options).run_once("go")
    return run, list((await store.read_events(run.session_id)).events)


def retries(events: list[asm.Event]) -> list[RunRetrying]:
    return [e.data for e in events if isinstance(e.data, RunRetrying)]


async def test_a_retryable_failure_before_output_is_retried_after_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flaky = Flaky(RATE_LIMITED, UNAVAILABLE)
    start = trio.current_time()
    run, events = await run_with(RetryingProvider(flaky, RetryPolicy(max_retries=2, base_delay=4), rng=lambda: 0.5))
    assert run.status is asm.RunStatus.COMPLETED and flaky.attempts == 3
    assert [(r.attempt, r.delay_s, r.error_code) for r in retries(events)] == [
        (1, 12.0, "provider_rate_limited"),  # the error's own retry_after
        (2, 4.0, "provider_unavailable"),  # full jitter: 0.5 * min(max_delay, 4 * 2**1)
    ]
    assert trio.current_time() - start >= 16.0, "each wait was actually waited"


@pytest.mark.parametrize(
    ("flaky", "why"),
    [
        (Flaky(UNAVAILABLE, output_first=True), "output had started"),
        (Flaky(AsmError("provider_authentication_failed", "bad key")), "not retryable"),
    ],
)
async def test_no_retry_after_output_or_for_an_error_that_is_not_retryable(flaky: Flaky, why: str) -> None:
    run, events = await run_with(with_retries(flaky, RetryPolicy(max_retries=3, base_delay=0)))
    assert run.status is asm.RunStatus.FAILED, why
    assert flaky.attempts == 1 and retries(events) == []


async def test_retries_stop_at_max_retries_with_the_last_error(autojump_clock: trio.testing.MockClock) -> None:
    flaky = Flaky(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    run, events = await run_with(with_retries(flaky, RetryPolicy(max_retries=2, base_delay=1)))
    assert run.status is asm.RunStatus.FAILED and run.error is not None
    assert run.error.code == "provider_unavailable" and flaky.attempts == 3
    assert [r.attempt for r in retries(events)] == [1, 2]


async def test_a_wait_longer_than_the_run_has_left_fails_at_once(autojump_clock: trio.testing.MockClock) -> None:
    flaky = Flaky(RATE_LIMITED)
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=with_retries(flaky, RetryPolicy(max_retries=2)))
    start = trio.current_time()
    run = await manager.run_once("go", timeout=5)
    assert run.status is asm.RunStatus.FAILED and run.error is not None
    assert run.error.code == "provider_rate_limited"
    assert "not retried: the wait it asks for, 12s, is longer than the" in run.error.message
    assert trio.current_time() - start < 5, "it did not wait for nothing"


async def test_a_retry_table_in_config_wraps_every_provider(autojump_clock: trio.testing.MockClock) -> None:
    table = {"store": "memory", "retry": {"max_retries": 1, "base_delay": 0.5}}
    async with open_runtime(load_config(table, env={}, user_file="/nonexistent")) as runtime:
        provider = runtime.provider("echo")
        assert isinstance(provider, RetryingProvider) and provider.policy == RetryPolicy(1, 0.5)
        assert (await runtime.run_once("hi")).output == "hi"
        flaky = Flaky(UNAVAILABLE)
        run = await runtime.manager.run_once("go", provider=with_retries(flaky, runtime.retry))
        assert run.status is asm.RunStatus.COMPLETED and flaky.attempts == 2


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"max_retries": -1}, "max_retries must be a whole number >= 0"),
        ({"max_retries": "3"}, "max_retries must be a whole number >= 0"),
        ({"base_delay": float("inf")}, "base_delay must be a finite number >= 0"),
        ({"max_delay": -2}, "max_delay must be a finite number >= 0"),
        ({"retries": 3}, "unknown key(s) retries"),
    ],
)
def test_a_bad_retry_table_is_invalid_config_at_assembly(table: dict[str, Any], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        asm.assemble(load_config({"retry": table}, env={}, user_file="/nonexistent"))
    assert caught.value.code == "invalid_config" and fragment in caught.value.message


def test_full_jitter_stays_within_its_ceiling() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=1, max_delay=8)
    ceilings = [policy.delay(attempt, UNAVAILABLE, rng=lambda: 1.0) for attempt in range(1, 7)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.delay(3, UNAVAILABLE, rng=lambda: 0.0) == 0.0
