"""The circuit breaker of one router member (and model).

::

    closed --N failures within `window` s--> open --`cooldown` s later--> half-open
      ^                                         ^                           |
      |                                         +--- the probe run fails ---+  (cooldown x backoff, capped)
      +-------------------------- the probe run succeeds -------------------+

While open, the member gets no run. Once the cooldown is over, exactly one run
(the *probe*) is let through; every other run passes the member over until the
probe ends. The state is ``opened_at`` + ``cooldown`` (when it may be probed
again follows from them), measured on an injectable clock:

>>> now = [0.0]
>>> breaker = CircuitBreaker(BreakerSettings(failure_threshold=2, window=10, cooldown=5), clock=lambda: now[0])
>>> breaker.record_failure(breaker.admit()), breaker.record_failure(breaker.admit())
(False, True)
>>> breaker.state, breaker.available()
(<CircuitState.OPEN: 'open'>, False)
>>> now[0] = 5.0
>>> probe = breaker.admit()
>>> probe.probe, breaker.state, breaker.available()
(True, <CircuitState.HALF_OPEN: 'half_open'>, False)
>>> breaker.record_success(probe), breaker.state
(True, <CircuitState.CLOSED: 'closed'>)

Every method is synchronous: under trio, a check and the change it leads to
happen with no other task in between, so two runs can never both take the probe.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from enum import StrEnum

import attrs

__all__ = ["BreakerSettings", "CircuitBreaker", "CircuitState", "CircuitStatus", "Ticket"]


class CircuitState(StrEnum):
    """Where a breaker is in its cycle."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@attrs.frozen
class BreakerSettings:
    """When a breaker opens and for how long (seconds on the router's clock)."""

    #: failures within ``window`` seconds that open the circuit
    failure_threshold: int = 5
    window: float = 60.0
    #: the first cooldown; each failed probe multiplies it by ``backoff``, up to ``max_cooldown``
    cooldown: float = 30.0
    max_cooldown: float = 600.0
    backoff: float = 2.0


@attrs.frozen
class Ticket:
    """A run's admission through a breaker; ``probe`` when it is the half-open probe."""

    probe: bool = False


_ADMITTED = Ticket()
_PROBE = Ticket(probe=True)


@attrs.frozen
class CircuitStatus:
    """A breaker as :meth:`RouterProvider.status` shows it."""

    member: str
    model: str | None
    state: CircuitState
    #: failures within the window (while closed), or those that opened it
    failures: int
    opened_at: float | None
    cooldown_s: float
    #: seconds until it may be probed (0 when it may be now; ``None`` while closed)
    retry_in_s: float | None


class CircuitBreaker:
    """One member's (or member and model's) breaker; see the module docstring."""

    def __init__(self, settings: BreakerSettings, *, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self.state = CircuitState.CLOSED
        self.opened_at: float | None = None
        self.cooldown = settings.cooldown
        self._failures: collections.deque[float] = collections.deque()
        self._opened_by = 0
        self._probing = False

    def recent_failures(self) -> int:
        """Failures within the window (what the health score divides by)."""
        self._forget(self._clock())
        return len(self._failures)

    def available(self) -> bool:
        """Would :meth:`admit` let a run through now? (Changes nothing.)"""
        if self.state is CircuitState.CLOSED:
            return True
        if self._probing:
            return False
        return self.state is CircuitState.HALF_OPEN or self._cooled_down(self._clock())

    def why_not(self) -> tuple[str, str]:
        """Why :meth:`available` is false: a reason code and the words."""
        if self._probing:
            return "probe_in_flight", "half-open: its one probe run is in flight"
        left = self._retry_in(self._clock())
        return "circuit_open", f"circuit open after {self._opened_by} failures; probed again in {left:.3g}s"

    def admit(self) -> Ticket:
        """Let a run through (call only when :meth:`available`): after the cooldown
        this moves the breaker to half-open and the ticket is the probe."""
        if self.state is CircuitState.CLOSED:
            return _ADMITTED
        self.state = CircuitState.HALF_OPEN
        self._probing = True
        return _PROBE

    def record_success(self, ticket: Ticket) -> bool:
        """A run admitted with ``ticket`` succeeded; ``True`` if that closed the circuit."""
        if not ticket.probe or self.state is not CircuitState.HALF_OPEN:
            return False  # a run admitted before the circuit opened decides nothing
        self.state = CircuitState.CLOSED
        self.opened_at = None
        self.cooldown = self.settings.cooldown
        self._failures.clear()
        self._probing = False
        return True

    def record_failure(self, ticket: Ticket) -> bool:
        """A run admitted with ``ticket`` failed; ``True`` if that opened the circuit."""
        now = self._clock()
        if ticket.probe and self.state is CircuitState.HALF_OPEN:
            self._probing = False
            self.cooldown = min(self.cooldown * self.settings.backoff, self.settings.max_cooldown)
            self._open(now, self._opened_by)
            return True
        if self.state is not CircuitState.CLOSED:
            return False  # already open: a straggler's failure does not extend the cooldown
        self._failures.append(now)
        self._forget(now)
        if len(self._failures) >= self.settings.failure_threshold:
            self._open(now, len(self._failures))
            self._failures.clear()
            return True
        return False

    def release(self, ticket: Ticket) -> None:
        """A run admitted with ``ticket`` ended without a verdict (cancelled, or failed
        through no fault of the member): a probe's place goes to the next run."""
        if ticket.probe and self.state is CircuitState.HALF_OPEN:
            self._probing = False

    def status(self, member: str, model: str | None) -> CircuitStatus:
        """This breaker as a value."""
        now = self._clock()
        closed = self.state is CircuitState.CLOSED
        return CircuitStatus(
            member=member,
            model=model,
            state=self.state,
            failures=self.recent_failures() if closed else self._opened_by,
            opened_at=self.opened_at,
            cooldown_s=self.cooldown,
            retry_in_s=None if closed else self._retry_in(now),
        )

    def _open(self, now: float, failures: int) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self._opened_by = failures

    def _cooled_down(self, now: float) -> bool:
        return self.opened_at is None or now >= self.opened_at + self.cooldown

    def _retry_in(self, now: float) -> float:
        return 0.0 if self.opened_at is None else max(0.0, self.opened_at + self.cooldown - now)

    def _forget(self, now: float) -> None:
        horizon = now - self.settings.window
        failures = self._failures
        while failures and failures[0] <= horizon:
            failures.popleft()
