"""Retries of a provider that failed before it said anything, honouring ``retry_after``.

::

    policy = RetryPolicy(max_retries=3, base_delay=0.5, max_delay=30)
    provider = with_retries(ClaudeProvider(...), policy)   # or [retry] in asm.toml

A run's attempt is retried when its provider raised a *retryable* ``AsmError``
(rate limited, unavailable, timed out) **before emitting any event**: once
output has started, a second attempt would repeat it, so the run fails with
the error instead (the router's failover follows the same rule). The wait is
exponential backoff with full jitter — a random delay in
``[0, min(max_delay, base_delay * 2 ** (attempt - 1))]`` — unless the error
says how long to wait (``details["retry_after"]``, from a 429's
``retry-after`` header): then exactly that. A wait longer than the run has
left before its timeout fails the run at once, saying so. Each retry is a
``run_retrying`` event (attempt, delay, the error's code and message).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from asm.errors import AsmError
from asm.events import EventData, RunRetrying
from asm.model import Capabilities, RunInput, RunResult
from asm.ports import Emit, Provider

_LOG = logging.getLogger("asm.retry")

__all__ = ["RetryPolicy", "RetryingProvider", "with_retries"]


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or math.isinf(value):
        raise AsmError(
            "invalid_config",
            f"retry {attribute.name} must be a finite number >= 0, not {value!r}",
            details={"key": f"retry.{attribute.name}"},
        )


@attrs.frozen
class RetryPolicy:
    """How often and how long to wait before trying a failed provider again.

    >>> RetryPolicy(max_retries=2).delay(1, AsmError("provider_rate_limited", "slow", details={"retry_after": 7}))
    7.0
    """

    max_retries: int = attrs.field(default=2)
    base_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)

    @max_retries.validator
    def _check_retries(self, _: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AsmError(
                "invalid_config",
                f"retry max_retries must be a whole number >= 0, not {value!r}",
                details={"key": "retry.max_retries"},
            )

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> RetryPolicy:
        """The ``[retry]`` table (keys ``max_retries``, ``base_delay``, ``max_delay``)."""
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise AsmError(
                "invalid_config",
                f"[retry] has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}",
                details={"key": "retry"},
            )
        return cls(**table)

    def should_retry(self, error: AsmError, attempt: int) -> bool:
        """Is ``error`` (from attempt number ``attempt``, 1-based) worth another attempt?"""
        return error.retryable and attempt <= self.max_retries

    def delay(self, attempt: int, error: AsmError, *, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): the error's
        ``retry_after`` if it has one, else full-jitter exponential backoff."""
        retry_after = error.details.get("retry_after")
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0:
            return float(retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(rng() * ceiling)


class _Watched:
    """The run's ``emit``, noting whether the provider has emitted anything yet."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.emitted = False
        self.error_text_max_bytes = emit.error_text_max_bytes
        self.error_text_max_lines = emit.error_text_max_lines

    async def __call__(self, data: EventData, /) -> None:
        self.emitted = True
        await self._emit(data)

    async def request_approval(self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any]) -> bool:
        self.emitted = True
        return await self._emit.request_approval(tool_call_id, tool_name, tool_input)

    async def authorize_tool(
        self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any], *, default: str = "allow"
    ) -> bool:
        self.emitted = True
        return await self._emit.authorize_tool(tool_call_id, tool_name, tool_input, default=default)


class RetryingProvider:
    """``provider`` with its failed attempts retried by ``policy`` (see the module docstring)."""

    def __init__(
        self,
        provider: Provider,
        policy: RetryPolicy,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.name = provider.name
        self._rng = rng

    def capabilities(self) -> Capabilities:
        """The wrapped provider's."""
        return self.provider.capabilities()

    def model_for(self, run: RunInput) -> str | None:
        """The wrapped provider's answer, if it gives one (:class:`asm.ports.ModelAware`)."""
        model_for = getattr(self.provider, "model_for", None)
        return model_for(run) if callable(model_for) else run.options.get("model")

    async def aclose(self) -> None:
        """Close the wrapped provider, if it holds resources."""
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Execute ``run``, retrying a failure that came before any output."""
        attempt = 1
        while True:
            watched = _Watched(emit)
            try:
                return await self.provider.execute(run, watched)
            except AsmError as error:
                if watched.emitted or not self.policy.should_retry(error, attempt):
                    raise
                wait = self.policy.delay(attempt, error, rng=self._rng)
                left = trio.current_effective_deadline() - trio.current_time()
                if wait > left:
                    raise AsmError(
                        error.code,
                        f"{error.message} (not retried: the wait it asks for, {wait:g}s, is longer than the "
                        f"{max(left, 0.0):g}s the run has left before its timeout)",
                        retryable=error.retryable,
                        details=error.details,
                    ) from error
                _LOG.info(
                    "%s: attempt %d failed [%s] %s; retrying in %.2fs",
                    self.name,
                    attempt,
                    error.code,
                    error.message,
                    wait,
                )
                await emit(RunRetrying(attempt, wait, error.code, error.message))
                await trio.sleep(wait)
                attempt += 1


def with_retries(provider: Provider, policy: RetryPolicy | None) -> Provider:
    """``provider`` retried by ``policy`` (``provider`` itself for ``None`` or no retries)."""
    if policy is None or policy.max_retries == 0:
        return provider
    return RetryingProvider(provider, policy)
