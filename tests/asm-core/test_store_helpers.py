"""Helpers asm.stores gives store plugins."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from asm.stores import PromptLimiter


async def test_a_free_thread_is_taken_without_letting_another_task_run_first() -> None:
    limiter = PromptLimiter(1)
    ran: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: trio.to_thread.run_sync(ran.append, "other"))
        await limiter.acquire_on_behalf_of("me")  # no yield: the other task has not started
        assert ran == []
        limiter.release_on_behalf_of("me")
    assert ran == ["other"]


async def test_no_more_threads_run_at_once_than_the_limiter_holds() -> None:
    limiter = PromptLimiter(2)
    running: list[int] = []
    most = 0
    changed = threading.Condition()
    release = threading.Event()

    def work() -> None:
        nonlocal most
        with changed:
            running.append(1)
            most = max(most, len(running))
            changed.notify_all()
        release.wait(30)
        with changed:
            running.pop()

    def both_running() -> None:
        with changed:
            assert changed.wait_for(lambda: len(running) == 2, timeout=30)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(lambda: trio.to_thread.run_sync(work, limiter=limiter))  # type: ignore[arg-type]
        await trio.to_thread.run_sync(both_running)  # two hold the limiter; the other three wait for it
        release.set()
    assert most == 2 and running == []


async def test_a_borrower_cannot_release_what_it_did_not_take() -> None:
    with pytest.raises(RuntimeError):
        PromptLimiter(1).release_on_behalf_of("nobody")
