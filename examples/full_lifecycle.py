"""A session's whole life, step by step, with SessionManager on the in-memory store.

Shows: sessions and runs through their state machines; a completed, a failed, a
cancelled and a timed-out run; pause and resume; reading the event log back
in pages; and the error an illegal transition raises.
"""

from __future__ import annotations

import trio

import asm
from asm.errors import ProviderFailure
from asm.events import MessageStreamed
from asm.ports import Provider
from asm.providers.scripted import Fail, Stall


async def main() -> None:
    store = asm.InMemorySessionStore()
    # Providers by name; a run names its provider (start_run(provider=...)),
    # and the manager resolves the name when it executes the run.
    providers: dict[str, Provider] = {
        "echo": asm.EchoProvider(),
        "flaky": asm.ScriptedProvider(
            ["Let me th", Fail(asm.AsmError("provider_rate_limited", "rate limited; retry in 20s"))], name="flaky"
        ),
        "stuck": asm.ScriptedProvider(["thinking...", Stall()], name="stuck"),
    }
    manager = asm.SessionManager(store, providers=providers)

    # -- a session: pending -> active ---------------------------------------
    session = await manager.start_session(agent_id="docs-bot", provider="echo")
    assert session.status is asm.SessionStatus.PENDING
    session = await manager.activate_session(session.id)
    assert session.status is asm.SessionStatus.ACTIVE
    print(f"session {session.id} is {session.status.value}")

    # -- two runs in one session: start_run (pending) + execute_run --------
    for prompt in ("first question", "second question"):
        run = await manager.start_run(session.id, prompt)
        assert run.status is asm.RunStatus.PENDING
        run = await manager.execute_run(run.id)
        print(f"run {run.id}: {run.status.value} -> {run.output!r}")
        assert run.status is asm.RunStatus.COMPLETED and run.output == prompt

    # -- a run that fails ----------------------------------------------------
    run = await manager.start_run(session.id, "a hard question", provider="flaky")
    run = await manager.execute_run(run.id)  # returns the failed run; it does not raise
    assert run.status is asm.RunStatus.FAILED and run.error is not None
    print(f"run failed: code={run.error.code} retryable={run.error.retryable} message={run.error.message!r}")
    assert run.error.code == "provider_rate_limited" and run.error.retryable
    try:
        run.raise_for_status()
    except ProviderFailure as exc:  # the class follows from the code's category
        print(f"raise_for_status raised {exc!r}")
        assert exc.code == "provider_rate_limited"
    else:
        raise AssertionError("raise_for_status should have raised")

    # -- a run cancelled while it hangs --------------------------------------
    run = await manager.start_run(session.id, "never answers", provider="stuck")
    streaming = trio.Event()
    finished: dict[str, asm.Run] = {}

    def on_event(event: asm.Event) -> None:
        # Called once each event is stored; the first text means the provider is running.
        if isinstance(event.data, MessageStreamed):
            streaming.set()

    async def execute() -> None:
        finished["run"] = await manager.execute_run(run.id, on_event=on_event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute)
        await streaming.wait()
        # cancel_run cancels the run's cancel scope and waits until it has ended.
        cancelled = await manager.cancel_run(run.id, reason="user pressed stop")
    print(f"run {cancelled.status.value}: {cancelled.error.message if cancelled.error else ''}")
    assert cancelled.status is asm.RunStatus.CANCELLED
    assert finished["run"].status is asm.RunStatus.CANCELLED  # execute_run returned the same final run
    # Cancelling a run that has ended is not an error: it comes back unchanged.
    assert (await manager.cancel_run(run.id)).status is asm.RunStatus.CANCELLED

    # -- a run that times out ------------------------------------------------
    run = await manager.start_run(session.id, "never answers either", provider="stuck")
    run = await manager.execute_run(run.id, timeout=0.05)
    print(f"run {run.status.value}: {run.error.message if run.error else ''}")
    assert run.status is asm.RunStatus.TIMEOUT and run.error is not None and run.error.code == "timeout"

    # -- pause and resume ----------------------------------------------------
    await manager.pause_session(session.id, reason="lunch")
    try:
        await manager.start_run(session.id, "while paused")
    except asm.AsmError as exc:
        print(f"paused session refuses runs: [{exc.code}] {exc}")
        assert exc.code == "session_not_active"
    else:
        raise AssertionError("a paused session should refuse new runs")
    session = await manager.resume_session(session.id)
    assert session.status is asm.SessionStatus.ACTIVE
    run = await manager.execute_run((await manager.start_run(session.id, "back again")).id)
    assert run.status is asm.RunStatus.COMPLETED

    # -- the end ---------------------------------------------------------------
    session = await manager.complete_session(session.id)
    print(f"session {session.status.value}")
    assert session.status is asm.SessionStatus.COMPLETED

    # -- reading the event log back, a page at a time ------------------------
    # seq is 1, 2, 3, ... per session; a page's cursor is what to pass as
    # after= for the next page, so a reader can stop and resume anywhere.
    cursor, pages = 0, 0
    seen: list[asm.Event] = []
    while True:
        page = await store.read_events(session.id, after=cursor, limit=10)
        seen.extend(page.events)
        pages += 1
        cursor = page.cursor
        if not page.has_more:
            break
    print(f"{len(seen)} events in {pages} pages; last seq {cursor}")
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert cursor == await store.latest_seq(session.id)

    # A types= filter: only how each run ended.
    endings = ["run_completed", "run_failed", "run_cancelled", "run_timeout"]
    page = await store.read_events(session.id, types=endings)
    print("run endings: " + ", ".join(f"#{e.seq} {e.type}" for e in page.events))
    assert [e.type.value for e in page.events] == [
        "run_completed",
        "run_completed",
        "run_failed",
        "run_cancelled",
        "run_timeout",
        "run_completed",
    ]

    # -- an illegal transition -------------------------------------------------
    try:
        await manager.activate_session(session.id)  # completed is final
    except asm.AsmError as exc:
        print(f"illegal transition: [{exc.code}] ({exc.to_dict()['category']}) {exc}")
        assert exc.code == "invalid_transition"
    else:
        raise AssertionError("a completed session cannot be activated")


if __name__ == "__main__":
    trio.run(main)
