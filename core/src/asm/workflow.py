"""The workflow bridge: what an external workflow engine (Airflow, Prefect,
Temporal, a Celery chain, a hand-written DAG) should do with a run's failure.

::

    outcome = await run_step(runtime, "summarise the ticket", provider="claude")
    if outcome.action == "complete":
        return outcome.output
    if outcome.action == "wait_and_retry":
        raise engine.Retry(countdown=outcome.delay)
    ...

:func:`classify` turns an error into one of five decisions, from its code
(:data:`DECISIONS`, one entry per code asm raises), its category, ``retryable``
and ``retry_after``:

- ``retry``: try the same step again now (a transient failure: a timeout);
- ``wait_and_retry``: try again after ``delay`` seconds (rate limits: the
  server's ``retry_after`` when it sent one, else :data:`DEFAULT_WAIT`);
- ``failover``: try the step on another provider (this one is down, out of
  quota or refusing the key);
- ``abort``: retrying cannot help (bad input or config, a policy said no, a bug);
- ``cancel``: the run was cancelled on purpose; stop without counting a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import trio

from asm.errors import CODES, AsmError, category_of
from asm.model import ErrorInfo, Run
from asm.states import RunStatus

__all__ = ["DECISIONS", "DEFAULT_WAIT", "Action", "Decision", "StepOutcome", "classify", "run_step", "run_step_sync"]

Action = Literal["retry", "failover", "wait_and_retry", "abort", "cancel"]

#: Seconds to wait on a rate limit whose error did not say how long.
DEFAULT_WAIT: Final = 30.0

#: Every error code asm raises, and what a workflow should do with it.
DECISIONS: Final[dict[str, Action]] = {
    **{code: "abort" for code, (category, _) in CODES.items() if category in ("validation", "resource", "tool")},
    # provider: down or refusing -> another provider; slowing us down -> wait; a blip -> again.
    "provider_error": "abort",
    "provider_unavailable": "failover",
    "provider_rate_limited": "wait_and_retry",
    "provider_timeout": "retry",
    "provider_authentication_failed": "failover",
    "provider_quota_exceeded": "failover",
    "provider_not_found": "failover",
    # storage: a connection may come back; anything else needs a person.
    "storage_error": "abort",
    "storage_connection_failed": "wait_and_retry",
    "storage_write_failed": "abort",
    "storage_read_failed": "abort",
    "storage_not_found": "abort",
    "storage_permission_denied": "abort",
    "artifact_corrupt": "abort",
    "migration_required": "abort",
    "dependency_not_available": "abort",
    # runtime
    "timeout": "retry",
    "cancelled": "cancel",
    "policy_violation": "abort",
    "internal_error": "abort",
    "invalid_operation": "abort",
    # concurrency: full now, free later.
    "queue_full": "wait_and_retry",
    "server_draining": "failover",
    "max_sessions_exceeded": "wait_and_retry",
    "max_runs_exceeded": "wait_and_retry",
    # workspace: the directory is in a state only a person can sort out.
    "workspace_error": "abort",
    "context_window_exceeded": "failover",  # a provider with a larger context window may take it
    "resume_not_found": "abort",  # the manager already fell back to replay; this one is final
}


@attrs.frozen
class Decision:
    """What to do with a failed step: ``action``, after ``delay`` seconds for
    ``wait_and_retry`` (else ``None``), and ``reason`` in words."""

    action: Action
    reason: str
    delay: float | None = None


def classify(error: AsmError | ErrorInfo) -> Decision:
    """The decision for ``error`` (an ``AsmError`` or a run's ``ErrorInfo``).

    >>> classify(AsmError("provider_rate_limited", "slow down", details={"retry_after": 12}))
    Decision(action='wait_and_retry', reason='provider_rate_limited: slow down', delay=12.0)
    >>> classify(AsmError("invalid_config", "unknown key")).action
    'abort'
    """
    code, message = error.code, error.message
    details: Mapping[str, Any] = error.details
    reason = f"{code}: {message}"
    action = DECISIONS.get(code)
    if action is None:  # a plugin's own code: by whether it may be retried
        action = "retry" if error.retryable else "abort"
        if category_of(code) == "provider" and not error.retryable:
            action = "failover"
    retry_after = details.get("retry_after")
    waits = isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0
    if action in ("retry", "wait_and_retry") and waits:
        return Decision("wait_and_retry", reason, float(retry_after))  # type: ignore[arg-type]
    if action == "wait_and_retry":
        return Decision(action, reason, DEFAULT_WAIT)
    return Decision(action, reason)


@attrs.frozen
class StepOutcome:
    """One workflow step run by asm: ``action`` is ``complete`` when the run
    completed, else :func:`classify`'s; ``run`` is the run as stored."""

    action: Literal["complete"] | Action
    run: Run
    delay: float | None = None
    reason: str = ""

    @property
    def output(self) -> str:
        """The run's output ('' unless it completed)."""
        return self.run.output


async def run_step(runner: Any, input: object, **options: Any) -> StepOutcome:
    """Run one step as an asm run (``runner``: a ``Runtime`` or a
    ``SessionManager``; ``options`` go to its ``run_once``) and say what the
    engine should do next. Bad input still raises (it is the caller's bug).

    >>> outcome = await run_step(runtime, "summarise", provider="claude")  # doctest: +SKIP
    """
    run: Run = await runner.run_once(input, **options)
    if run.status is RunStatus.COMPLETED:
        return StepOutcome("complete", run)
    if run.status is RunStatus.TIMEOUT and run.error is None:
        decision = Decision("retry", "timeout")
    else:
        assert run.error is not None
        decision = classify(run.error)
    return StepOutcome(decision.action, run, decision.delay, decision.reason)


def run_step_sync(input: object, *, config: Any = None, **options: Any) -> StepOutcome:
    """:func:`run_step` for a synchronous engine's task (an Airflow operator, a Celery
    task): opens a runtime from ``config`` (as :func:`asm.open_runtime` takes it,
    ``None``: ``asm.toml`` and the environment) in a ``trio.run`` of its own.

    >>> outcome = run_step_sync("summarise", provider="claude")  # doctest: +SKIP
    """
    from asm.runtime import open_runtime

    async def step() -> StepOutcome:
        async with open_runtime(config) as runtime:
            return await run_step(runtime, input, **options)

    return trio.run(step)
