"""Helpers shared by the contract suites (private)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

from asm.errors import AsmError

__all__ = ["background_tasks", "expect_asm_error", "guard", "unique"]


def unique(prefix: str) -> str:
    """A fresh identifier, so suites never collide with data already in a shared store."""
    return f"{prefix}_{uuid.uuid4().hex}"


@contextmanager
def expect_asm_error(code: str, doing: str) -> Iterator[None]:
    """Fail the test unless the block raises ``AsmError`` with ``code``.

    ``doing`` describes the call ("get_session of an unknown id") for the
    failure message, which says what the contract expects.
    """
    try:
        yield
    except AsmError as exc:
        if exc.code != code:
            pytest.fail(f"{doing} raised AsmError(code={exc.code!r}: {exc}); the contract requires code {code!r}")
        return
    except Exception as exc:  # noqa: BLE001 - reported as a contract failure, with the cause chained
        pytest.fail(f"{doing} raised {exc!r}; the contract requires AsmError(code={code!r})")
    pytest.fail(f"{doing} did not raise; the contract requires AsmError(code={code!r})")


@contextmanager
def guard(seconds: float, what: str) -> Iterator[None]:
    """Cancel the block and fail the test if it takes more than ``seconds``.

    A guard against a broken plugin hanging the test run, never a
    performance bound: ``seconds`` is generous (the suites' ``wait_limit``).
    """
    with trio.move_on_after(seconds) as scope:
        yield
    if scope.cancelled_caught:
        pytest.fail(f"{what} did not finish within {seconds:g}s (the suite's wait_limit); it hangs")


def background_tasks() -> set[trio.lowlevel.Task]:
    """Every task outside the test's own task tree: trio's system tasks and
    whatever a plugin spawned with ``trio.lowlevel.spawn_system_task``.

    Tasks a provider starts in nurseries it opens end with ``execute`` (trio
    guarantees it); system tasks are the one way to leave one behind, so the
    suites compare this set before and after a run.
    """
    root = trio.lowlevel.current_root_task()
    if root is None:  # pragma: no cover - always set inside trio.run
        return set()
    main = trio.lowlevel.current_task()
    while main.parent_nursery is not None and main.parent_nursery.parent_task is not root:
        main = main.parent_nursery.parent_task
    found: set[trio.lowlevel.Task] = set()
    stack = [task for nursery in root.child_nurseries for task in nursery.child_tasks if task is not main]
    while stack:
        task = stack.pop()
        found.add(task)
        stack.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return found
