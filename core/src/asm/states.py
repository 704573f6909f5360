"""The session and run state machines, enforced.

Session: ``pending -> active (<-> paused) -> completed | failed | cancelled``.
Run: ``pending -> running -> completed | failed | cancelled | timeout`` (a
pending run may also be cancelled before it starts). Any other move raises
``AsmError(code="invalid_transition")``:

>>> check_run_transition(RunStatus.PENDING, RunStatus.RUNNING)
<RunStatus.RUNNING: 'running'>
>>> check_run_transition(RunStatus.COMPLETED, RunStatus.RUNNING)
Traceback (most recent call last):
...
asm.errors.ValidationError: run cannot go from completed to running; ...
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, TypeVar

from asm.errors import AsmError

__all__ = [
    "RUN_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "RunStatus",
    "SessionStatus",
    "check_run_transition",
    "check_session_transition",
    "check_transition",
]


class SessionStatus(StrEnum):
    """Where a session is in its life."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the session can never change again."""
        return not SESSION_TRANSITIONS[self]


class RunStatus(StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        """True once the run has ended."""
        return not RUN_TRANSITIONS[self]


_S = SessionStatus
_R = RunStatus

SESSION_TRANSITIONS: Final[dict[SessionStatus, frozenset[SessionStatus]]] = {
    _S.PENDING: frozenset({_S.ACTIVE, _S.FAILED, _S.CANCELLED}),
    _S.ACTIVE: frozenset({_S.PAUSED, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    _S.PAUSED: frozenset({_S.ACTIVE, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}

RUN_TRANSITIONS: Final[dict[RunStatus, frozenset[RunStatus]]] = {
    _R.PENDING: frozenset({_R.RUNNING, _R.CANCELLED}),
    _R.RUNNING: frozenset({_R.COMPLETED, _R.FAILED, _R.CANCELLED, _R.TIMEOUT}),
    _R.COMPLETED: frozenset(),
    _R.FAILED: frozenset(),
    _R.CANCELLED: frozenset(),
    _R.TIMEOUT: frozenset(),
}

_Status = TypeVar("_Status", SessionStatus, RunStatus)


def check_transition(
    kind: str,
    table: dict[_Status, frozenset[_Status]],
    current: _Status,
    target: _Status,
) -> _Status:
    """Return ``target`` if ``table`` allows ``current -> target``, else raise
    ``invalid_transition``. The one function both machines go through."""
    if target in table[current]:
        return target
    allowed = ", ".join(sorted(s.value for s in table[current])) or "nothing (it has ended)"
    raise AsmError(
        "invalid_transition",
        f"{kind} cannot go from {current.value} to {target.value}; from {current.value} it can go to {allowed}",
        details={"kind": kind, "from": current.value, "to": target.value},
    )


def check_session_transition(current: SessionStatus, target: SessionStatus) -> SessionStatus:
    """Validate one session transition (see the module docstring)."""
    return check_transition("session", SESSION_TRANSITIONS, current, target)


def check_run_transition(current: RunStatus, target: RunStatus) -> RunStatus:
    """Validate one run transition (see the module docstring)."""
    return check_transition("run", RUN_TRANSITIONS, current, target)
