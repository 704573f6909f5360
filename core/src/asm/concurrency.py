"""``ConcurrencyLimiter``: caps on parallel sessions and parallel runs shared by many servers.

::

    limiter = asm.ConcurrencyLimiter(max_parallel_sessions=100, max_parallel_runs=8)
    async with asm.open_session_server(manager, limiter=limiter) as a, \\
               asm.open_session_server(manager, limiter=limiter) as b:
        ...  # at most 8 runs execute at once across a and b

Waiters are served first come, first served (trio's capacity limiters are
FIFO-fair), so no server starves another. ``None`` means no limit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator

import attrs
import trio

from asm.errors import AsmError

__all__ = ["ConcurrencyLimiter", "LimiterStatus"]


@attrs.frozen
class LimiterStatus:
    """A snapshot of a :class:`ConcurrencyLimiter` (``None`` limits mean unlimited)."""

    max_parallel_sessions: int | None
    max_parallel_runs: int | None
    active_sessions: int
    active_runs: int
    waiting_sessions: int
    waiting_runs: int


def _limit(name: str, value: int | None) -> float:
    if value is None:
        return math.inf
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise AsmError("validation_error", f"{name} must be an int >= 1 or None (no limit), not {value!r}")
    return value


class ConcurrencyLimiter:
    """One limit on parallel sessions and one on parallel runs, shared by
    every :class:`~asm.server.SessionServer` given this limiter.

    A server holds a session slot from when it opens until it closes, and a
    run slot while each of its runs executes; a server waiting for a slot
    waits in FIFO order with every other waiter.
    """

    def __init__(self, *, max_parallel_sessions: int | None = None, max_parallel_runs: int | None = None) -> None:
        self._sessions = trio.CapacityLimiter(_limit("max_parallel_sessions", max_parallel_sessions))
        self._runs = trio.CapacityLimiter(_limit("max_parallel_runs", max_parallel_runs))
        self.max_parallel_sessions = max_parallel_sessions
        self.max_parallel_runs = max_parallel_runs

    @contextlib.asynccontextmanager
    async def session_slot(self, owner: object) -> AsyncIterator[None]:
        """Hold a session slot for ``owner`` (any unique object) during the block."""
        await self._sessions.acquire_on_behalf_of(owner)
        try:
            yield
        finally:
            self._sessions.release_on_behalf_of(owner)

    async def acquire_run_slot(self, owner: object) -> None:
        """Wait (FIFO) for a run slot and hold it for ``owner``."""
        await self._runs.acquire_on_behalf_of(owner)

    def release_run_slot(self, owner: object) -> None:
        """Give back ``owner``'s run slot."""
        self._runs.release_on_behalf_of(owner)

    def statistics(self) -> LimiterStatus:
        """What is in use and how many wait, now."""
        sessions = self._sessions.statistics()
        runs = self._runs.statistics()
        return LimiterStatus(
            max_parallel_sessions=self.max_parallel_sessions,
            max_parallel_runs=self.max_parallel_runs,
            active_sessions=sessions.borrowed_tokens,
            active_runs=runs.borrowed_tokens,
            waiting_sessions=sessions.tasks_waiting,
            waiting_runs=runs.tasks_waiting,
        )
