"""Small structured-concurrency helpers shared by core modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import trio


@contextlib.contextmanager
def single_errors() -> Iterator[None]:
    """Re-raise a nursery's lone failure as itself rather than as an exception group.

    Users of ``execute_run`` or ``stream_session`` should catch ``AsmError``,
    not ``ExceptionGroup``; groups of cancellations stay groups so trio's
    cancel scopes still see them.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], trio.Cancelled | BaseExceptionGroup):
            raise group.exceptions[0] from None
        raise
