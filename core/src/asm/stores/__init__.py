"""Stores shipped with asm-core, and helpers every store plugin uses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from asm.errors import AsmError
from asm.events import EventType
from asm.model import Run
from asm.states import RunStatus

__all__ = ["claim_refused", "parse_event_types", "validate_artifact_key", "validate_page_args"]

_KEY_SEGMENT: Final = re.compile(r"^[A-Za-z0-9._@+=,-]+$")
MAX_KEY_LENGTH: Final = 1024


def validate_artifact_key(key: str) -> str:
    """Return ``key`` if it is a safe relative path, else raise ``validation_error``.

    >>> validate_artifact_key("runs/run_1/patch.diff")
    'runs/run_1/patch.diff'
    >>> validate_artifact_key("../etc/passwd")
    Traceback (most recent call last):
    ...
    asm.errors.ValidationError: artifact key '../etc/passwd' is not allowed: ...
    """
    problem = None
    if not isinstance(key, str) or not key:
        problem = "it is empty"
    elif len(key) > MAX_KEY_LENGTH:
        problem = f"it is longer than {MAX_KEY_LENGTH} characters"
    elif key.startswith("/"):
        problem = "it is absolute"
    else:
        for segment in key.split("/"):
            if segment in ("", ".", ".."):
                problem = "it has an empty, '.' or '..' segment"
                break
            if not _KEY_SEGMENT.match(segment):
                problem = "it has characters other than letters, digits and ._@+=,-"
                break
    if problem:
        raise AsmError(
            "validation_error",
            f"artifact key {key!r} is not allowed: {problem}; use a relative path like 'runs/<id>/out.txt'",
            details={"key": key},
        )
    return key


def claim_refused(stored: Run) -> AsmError:
    """The ``invalid_operation`` a store raises from ``claim_run`` when the stored
    run is no longer ``pending``: another process (or task) claimed it first.

    >>> from asm.model import RunInput
    >>> claim_refused(Run("run_1", "ses_1", RunInput.coerce("hi"), status="completed")).message
    'run run_1 has already ended (completed); start a new run to go again'
    """
    if stored.status is RunStatus.RUNNING:
        by = f" in process {stored.owner.describe()}" if stored.owner is not None else ""
        message = f"run {stored.id} is already running{by}; wait for it, or cancel it there"
    elif stored.status.is_terminal:
        message = f"run {stored.id} has already ended ({stored.status.value}); start a new run to go again"
    else:
        message = f"run {stored.id} is {stored.status.value}, not pending; only a pending run can be executed"
    details = {"run_id": stored.id, "status": stored.status.value}
    return AsmError("invalid_operation", message, details=details)


def parse_event_types(types: Iterable[EventType | str] | None) -> frozenset[EventType] | None:
    """Normalize a ``types=`` filter; an unknown type is a ``validation_error``.

    >>> sorted(parse_event_types(["run_started"]))
    [<EventType.RUN_STARTED: 'run_started'>]
    """
    if types is None:
        return None
    if isinstance(types, str):
        types = [types]
    parsed = set()
    for value in types:
        try:
            parsed.add(EventType(value))
        except ValueError:
            raise AsmError(
                "validation_error",
                f"unknown event type {value!r} in types=; valid types are: {', '.join(t.value for t in EventType)}",
                details={"type": value},
            ) from None
    return frozenset(parsed)


def validate_page_args(after: int, before: int | None, limit: int | None) -> None:
    """Reject negative cursors and limits with ``invalid_cursor`` / ``validation_error``."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise AsmError("invalid_cursor", f"after={after!r} must be an integer seq >= 0")
    if before is not None and (isinstance(before, bool) or not isinstance(before, int) or before < 1):
        raise AsmError("invalid_cursor", f"before={before!r} must be an integer seq >= 1")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise AsmError("validation_error", f"limit={limit!r} must be an integer >= 1 or None")
