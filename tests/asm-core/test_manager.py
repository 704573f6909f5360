"""SessionManager: lifecycles, the event pipeline, failures, cancellation, timeouts, hooks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

import asm
from asm import AsmError, Event, EventType, RunStatus, SessionManager, SessionStatus
from asm.events import (
    ApprovalRequested,
    EventsCompacted,
    MessageReceived,
    MessageStreamed,
    RunCompleted,
    RunInterrupted,
    TokenUsageUpdated,
    ToolCallStarted,
)
from asm.model import ProviderError, RunInput, RunResult, TokenUsage
from asm.ports import Emit
from asm.providers.scripted import Crash, Delay, EchoProvider, Fail, ScriptedProvider, Stall
from asm.stores.memory import InMemorySessionStore

T = EventType


async def all_events(store: InMemorySessionStore, session_id: str) -> list[Event]:
    return list((await store.read_events(session_id)).events)


def types(events: Sequence[Event]) -> list[EventType]:
    return [e.type for e in events]


@pytest.fixture
def store() -> InMemorySessionStore:
    return InMemorySessionStore()


async def test_run_once_records_the_whole_lifecycle_in_order(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=EchoProvider())
    seen: list[Event] = []
    run = await manager.run_once("hello world", on_event=seen.append)

    assert run.status is RunStatus.COMPLETED and run.output == "hello world"
    assert run.usage.output_tokens > 0 and run.ended_at is not None and run.provider == "echo"
    stored = await all_events(store, run.session_id)
    assert seen == stored
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert types(stored) == [
        T.SESSION_CREATED, T.SESSION_STARTED, T.RUN_STARTED, T.MESSAGE_SENT, T.MESSAGE_STREAMED,
        T.MESSAGE_STREAMED, T.MESSAGE_RECEIVED, T.TOKEN_USAGE_UPDATED, T.COST_UPDATED, T.RUN_COMPLETED,
        T.SESSION_COMPLETED,
    ]  # fmt: skip
    assert all(e.run_id == run.id for e in stored if e.type.value.startswith(("run_", "message_", "token")))
    assert (await store.get_session(run.session_id)).status is SessionStatus.COMPLETED
    assert await store.get_run(run.id) == run


async def test_callbacks_see_an_event_only_after_the_store_has_it(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider.from_text("x" * 200, chunk_size=3))
    checked = 0

    async def check(event: Event) -> None:
        nonlocal checked
        page = await store.read_events(event.session_id, after=event.seq - 1, limit=1)  # type: ignore[operator]
        assert page.events == (event,)
        checked += 1

    run = await manager.run_once("go", on_event=check)
    assert run.status is RunStatus.COMPLETED
    assert checked == await store.latest_seq(run.session_id)


async def test_the_memory_store_keeps_the_very_events_delivered_in_seq_order(store: InMemorySessionStore) -> None:
    # The write queue hands its events over to the in-memory store (sequenced in place):
    # what the callback saw is what is stored, seq gap-free, and a re-append is idempotent.
    chunks = [f"c{i} " for i in range(2_500)]
    delivered: list[Event] = []
    run = await SessionManager(store, provider=ScriptedProvider(chunks)).run_once("go", on_event=delivered.append)
    stored = (await store.read_events(run.session_id)).events
    assert list(stored) == delivered and [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert "".join(e.data.delta for e in stored if isinstance(e.data, MessageStreamed)) == "".join(chunks)
    again = await store.append_events([attrs.evolve(delivered[5], seq=None)])
    assert again == [delivered[5]] and await store.latest_seq(run.session_id) == len(stored)


async def test_a_store_that_overrides_append_events_gets_every_event_through_it() -> None:
    class Counting(InMemorySessionStore):
        appended = 0

        async def append_events(self, events: Sequence[Event]) -> list[Event]:
            self.appended += len(events)
            return await super().append_events(events)

    store = Counting()
    run = await SessionManager(store, provider=ScriptedProvider(["a", "b", "c"])).run_once("go")
    assert store.appended == await store.latest_seq(run.session_id)


class CountingProvider:
    """Streams ``n`` chunks, counting the emits that returned."""

    name = "counting"

    def __init__(self, n: int) -> None:
        self.n = n
        self.emitted = 0

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities(streaming=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        for i in range(self.n):
            await emit(MessageStreamed(f"{i} "))
            self.emitted += 1
        return RunResult(output="".join(f"{i} " for i in range(self.n)))


class AnnouncingStore(InMemorySessionStore):
    """Holds each owned append until every other task is blocked, saying first (or not) that it
    has taken the batch; records how many chunks the provider emitted meanwhile."""

    def __init__(self, provider: CountingProvider, *, announce: bool) -> None:
        super().__init__()
        self.provider = provider
        self.announce = announce
        self.emitted_meanwhile: list[int] = []

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        return await super().append_events(events)

    async def append_owned_events(self, events: Sequence[Event], on_taken: Any = None) -> list[Event]:
        before = self.provider.emitted
        if self.announce:
            on_taken()
        await trio.testing.wait_all_tasks_blocked()
        self.emitted_meanwhile.append(self.provider.emitted - before)
        return await super().append_owned_events(events)


@pytest.mark.parametrize("announce", [True, False])
async def test_the_provider_streams_on_once_the_store_has_taken_a_batch(announce: bool) -> None:
    # asm.ports.OwnedAppend's on_taken: a full queue lets its provider go on as soon as the store
    # says it has taken the batch (a thread-based store: its rows are built), not when the append
    # returns; a store that never says so holds the provider until then, and loses nothing.
    provider = CountingProvider(40)
    store = AnnouncingStore(provider, announce=announce)
    run = await SessionManager(store, provider=provider, event_buffer_size=4).run_once("go")
    assert run.output == "".join(f"{i} " for i in range(40))
    assert store.emitted_meanwhile[0] == (4 if announce else 0)
    streamed = [e for e in await all_events(store, run.session_id) if isinstance(e.data, MessageStreamed)]
    assert [e.data.delta for e in streamed] == [f"{i} " for i in range(40)]


async def test_a_slow_consumer_holds_the_provider_back_and_loses_nothing(store: InMemorySessionStore) -> None:
    chunks = [f"c{i} " for i in range(300)]
    manager = SessionManager(store, provider=ScriptedProvider(chunks), event_buffer_size=4)
    received: list[str] = []

    async def slow(event: Event) -> None:
        if isinstance(event.data, MessageStreamed):
            received.append(event.data.delta)
        await trio.lowlevel.checkpoint()

    run = await manager.run_once("go", on_event=slow)
    assert received == chunks and run.output == "".join(chunks)


async def test_usage_is_summed_from_usage_events_when_the_result_has_none(store: InMemorySessionStore) -> None:
    script = ["a", TokenUsageUpdated(TokenUsage(10, 2)), "b", TokenUsageUpdated(TokenUsage(5, 3, cache_read_tokens=4))]
    run = await SessionManager(store, provider=ScriptedProvider(script)).run_once("go")
    assert run.usage == TokenUsage(15, 5, cache_read_tokens=4)
    completed = (await store.read_events(run.session_id, types=["run_completed"])).events[0]
    assert isinstance(completed.data, RunCompleted) and completed.data.usage == run.usage


async def test_provider_error_fails_the_run_and_the_session_with_its_code(store: InMemorySessionStore) -> None:
    error = AsmError(
        "provider_rate_limited",
        "rate limited; retry after 3s",
        details={"provider_error": ProviderError("fake", "http_429", "too many", stderr="x\n" * 500)},
    )
    manager = SessionManager(
        store, provider=ScriptedProvider(["partial", Fail(error)]), error_text_max_lines=10, error_text_max_bytes=12
    )
    run = await manager.run_once("go")

    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "provider_rate_limited" and run.error.retryable
    assert run.error.provider_error is not None and run.error.provider_error.truncated
    assert run.error.provider_error.stderr == "x\nx\nx\nx\nx\nx\n"
    events = await all_events(store, run.session_id)
    assert types(events)[-3:] == [T.MESSAGE_STREAMED, T.RUN_FAILED, T.SESSION_FAILED]
    failed = events[-2].data
    assert failed == asm.events.RunFailed(
        "provider_rate_limited", "rate limited; retry after 3s", True, run.error.provider_error
    )
    session = await store.get_session(run.session_id)
    assert session.status is SessionStatus.FAILED and session.error is not None
    with pytest.raises(AsmError) as caught:
        run.raise_for_status()
    assert caught.value.code == "provider_rate_limited" and caught.value.retryable


async def test_a_crashing_provider_fails_its_run_not_the_caller(store: InMemorySessionStore) -> None:
    run = await SessionManager(store, provider=ScriptedProvider(["a", Crash(KeyError("boom"))])).run_once("go")
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "provider_error" and "KeyError" in run.error.message
    assert run.error.provider_error is not None and run.error.provider_error.kind == "crash"


async def test_a_provider_may_not_emit_lifecycle_events(store: InMemorySessionStore) -> None:
    run = await SessionManager(store, provider=ScriptedProvider([RunCompleted("end_turn")])).run_once("go")
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "validation_error" and "lifecycle" in run.error.message


async def test_a_provider_may_not_emit_compaction_markers(store: InMemorySessionStore) -> None:
    marker = EventsCompacted(first_seq=1, last_seq=5, count=5, run_id="run_x")
    run = await SessionManager(store, provider=ScriptedProvider([marker])).run_once("go")
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "validation_error" and "compaction markers" in run.error.message
    stored = await store.read_events(run.session_id, types=["events_compacted"])
    assert stored.events == ()


async def test_a_provider_may_not_emit_an_interruption(store: InMemorySessionStore) -> None:
    run = await SessionManager(store, provider=ScriptedProvider([RunInterrupted(1, "me", "restart")])).run_once("go")
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "validation_error" and "run_interrupted" in run.error.message
    assert (await store.read_events(run.session_id, types=["run_interrupted"])).events == ()


async def test_timeout_gives_status_timeout(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider(["a", Stall()]))
    run = await manager.run_once("go", timeout=0.05)
    assert run.status is RunStatus.TIMEOUT and run.error is not None and run.error.code == "timeout"
    assert run.error.retryable
    events = await all_events(store, run.session_id)
    assert types(events)[-2:] == [T.RUN_TIMEOUT, T.SESSION_FAILED]
    assert events[-2].data == asm.events.RunTimeout(0.05)


async def test_manager_default_run_timeout_applies(store: InMemorySessionStore) -> None:
    run = await SessionManager(store, provider=ScriptedProvider([Stall()]), run_timeout=0.01).run_once("go")
    assert run.status is RunStatus.TIMEOUT


async def test_cancel_run_stops_an_executing_run(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider(["before", Stall()]))
    session = await manager.start_session()
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "go")
    streamed = trio.Event()

    def on_event(event: Event) -> None:
        if event.type is T.MESSAGE_STREAMED:
            streamed.set()

    results: list[asm.Run] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _collect(results, manager.execute_run(run.id, on_event=on_event)))
        await streamed.wait()
        cancelled = await manager.cancel_run(run.id, reason="user pressed stop")
    assert cancelled.status is RunStatus.CANCELLED
    assert results[0] == cancelled and cancelled.error is not None
    events = await all_events(store, session.id)
    assert events[-1].type is T.RUN_CANCELLED and events[-1].data == asm.events.RunCancelled("user pressed stop")
    assert (await store.get_session(session.id)).status is SessionStatus.ACTIVE


async def _collect(results: list[Any], awaitable: Any) -> None:
    results.append(await awaitable)


async def test_cancel_run_from_inside_the_run_does_not_deadlock(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider(["a", Delay(0.01), "b", Stall()]))

    async def stop_at_first_chunk(event: Event) -> None:
        if event.type is T.MESSAGE_STREAMED:
            await manager.cancel_run(event.run_id or "")

    run = await manager.run_once("go", on_event=stop_at_first_chunk)
    assert run.status is RunStatus.CANCELLED
    assert (await store.get_session(run.session_id)).status is SessionStatus.CANCELLED


async def test_cancel_run_of_a_pending_run_and_of_a_finished_run(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=EchoProvider())
    session = await manager.start_session()
    await manager.activate_session(session.id)
    pending = await manager.start_run(session.id, "go")
    cancelled = await manager.cancel_run(pending.id)
    assert cancelled.status is RunStatus.CANCELLED
    assert (await all_events(store, session.id))[-1].type is T.RUN_CANCELLED
    with pytest.raises(AsmError) as caught:
        await manager.execute_run(pending.id)
    assert caught.value.code == "invalid_operation"
    assert "has already ended (cancelled)" in caught.value.message

    finished = await manager.execute_run((await manager.start_run(session.id, "again")).id)
    assert await manager.cancel_run(finished.id) == finished


async def test_cancelling_the_caller_records_the_run_cancelled_and_keeps_accepted_events(
    store: InMemorySessionStore,
) -> None:
    manager = SessionManager(store, provider=ScriptedProvider(["one", "two", Stall()]))
    seen: list[Event] = []

    with trio.CancelScope() as caller:

        def on_event(event: Event) -> None:
            seen.append(event)
            if event.type is T.MESSAGE_STREAMED and event.data == MessageStreamed("two"):
                caller.cancel()  # both chunks are in; the provider stalls: its caller gives up

        await manager.run_once("go", on_event=on_event)
    session_id = seen[0].session_id
    events = await all_events(store, session_id)
    assert [e.data for e in events if e.type is T.MESSAGE_STREAMED] == [MessageStreamed("one"), MessageStreamed("two")]
    assert types(events)[-2:] == [T.RUN_CANCELLED, T.SESSION_CANCELLED]
    (run,) = await store.list_runs(session_id)
    assert run.status is RunStatus.CANCELLED


async def test_a_consumer_that_raises_fails_the_run(store: InMemorySessionStore) -> None:
    def broken(event: Event) -> None:
        if event.type is T.MESSAGE_STREAMED:
            raise ValueError("bug in my callback")

    run = await SessionManager(store, provider=ScriptedProvider(["a", "b", Stall()])).run_once("go", on_event=broken)
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "internal_error" and "bug in my callback" in run.error.message


class FlakyStore(InMemorySessionStore):
    """Accepts ``budget`` events, then fails every append as a broken disk would."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        if self.budget < len(events):
            raise AsmError("storage_write_failed", "disk full; free space and retry")
        self.budget -= len(events)
        return await super().append_events(events)


async def test_a_store_failure_fails_the_run_and_keeps_what_was_stored() -> None:
    store = FlakyStore(budget=6)
    manager = SessionManager(store, provider=ScriptedProvider(["a", Delay(0.01), "b", Delay(0.01), "c", Stall()]))
    delivered: list[Event] = []
    session = await manager.start_session()
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "go")
    done = await manager.execute_run(run.id, on_event=delivered.append)
    assert done.status is RunStatus.FAILED and done.error is not None
    assert done.error.code == "storage_write_failed"
    assert await store.get_run(run.id) == done
    assert delivered == (await all_events(store, session.id))[2:]


async def test_bad_input_is_refused_before_anything_is_stored(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=EchoProvider())
    for bad in ["", "   ", [], [{"role": "user", "content": ""}], [{"role": "wizard", "content": "x"}], 42, [{"x": 1}]]:
        with pytest.raises(AsmError) as caught:
            await manager.run_once(bad)
        assert caught.value.code == "validation_error", bad
    assert await store.list_sessions() == []


async def test_runs_need_an_active_session(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=EchoProvider())
    session = await manager.start_session(agent_id="agent-1")
    with pytest.raises(AsmError) as caught:
        await manager.start_run(session.id, "go")
    assert caught.value.code == "session_not_active" and "activate_session" in caught.value.message
    await manager.activate_session(session.id)
    run = await manager.start_run(
        session.id, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    )
    await manager.pause_session(session.id)
    with pytest.raises(AsmError) as caught:
        await manager.execute_run(run.id)
    assert caught.value.code == "session_not_active"
    await manager.resume_session(session.id)
    done = await manager.execute_run(run.id)
    assert done.output == "hi"
    sent = (await store.read_events(session.id, types=[T.MESSAGE_SENT])).events
    assert [(e.data.role, e.data.content) for e in sent] == [("system", "be brief"), ("user", "hi")]  # type: ignore[attr-defined]
    await manager.complete_session(session.id)
    with pytest.raises(AsmError) as caught:
        await manager.complete_session(session.id)
    assert caught.value.code == "invalid_transition"


async def test_unknown_ids_and_providers_are_resource_errors(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=EchoProvider(), providers={"echo": EchoProvider()})
    with pytest.raises(AsmError) as caught:
        await manager.execute_run("run_missing")
    assert caught.value.code == "run_not_found"
    with pytest.raises(AsmError) as caught:
        await manager.activate_session("ses_missing")
    assert caught.value.code == "session_not_found"
    with pytest.raises(AsmError) as caught:
        await manager.run_once("hi", provider="nope")
    assert caught.value.code == "provider_not_found" and "echo" in caught.value.message
    with pytest.raises(AsmError) as caught:
        await SessionManager(store).run_once("hi")
    assert caught.value.code == "validation_error"


async def test_cancel_session_cancels_its_runs(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider([Stall()]))
    session = await manager.start_session()
    await manager.activate_session(session.id)
    running = await manager.start_run(session.id, "one")
    queued = await manager.start_run(session.id, "two")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.execute_run, running.id)
        await trio.testing.wait_all_tasks_blocked()
        await manager.cancel_session(session.id, reason="shutting down")
    assert {r.status for r in await store.list_runs(session.id)} == {RunStatus.CANCELLED}
    assert (await store.get_run(queued.id)).status is RunStatus.CANCELLED
    assert (await store.get_session(session.id)).status is SessionStatus.CANCELLED


class RedactPlugin:
    def __init__(self) -> None:
        self.durable: list[Event] = []
        self.lifecycle: list[str] = []

    @asm.hookimpl
    def asm_transform_event(self, event: Event) -> Event | None:
        if isinstance(event.data, MessageStreamed) and "sk-secret" in event.data.delta:
            return Event(event.id, event.session_id, event.run_id, MessageStreamed("[REDACTED]"), event.at)
        return None

    @asm.hookimpl
    async def asm_event(self, event: Event) -> None:
        await trio.lowlevel.checkpoint()
        self.durable.append(event)

    @asm.hookimpl
    def asm_run_starting(self, session: asm.Session, run: asm.Run) -> None:
        self.lifecycle.append(f"starting {run.status.value}")

    @asm.hookimpl
    def asm_run_finished(self, session: asm.Session, run: asm.Run) -> None:
        self.lifecycle.append(f"finished {run.status.value}")

    @asm.hookimpl
    def asm_session_started(self, session: asm.Session) -> None:
        self.lifecycle.append("session started")

    @asm.hookimpl
    def asm_session_ended(self, session: asm.Session) -> None:
        self.lifecycle.append(f"session {session.status.value}")


async def test_runtime_hooks_transform_before_storing_and_observe_after(store: InMemorySessionStore) -> None:
    plugin = RedactPlugin()
    registry = asm.load_plugins(entry_points=False, extra=[plugin])
    manager = SessionManager(store, provider=ScriptedProvider(["key=sk-secret"]), plugins=registry)
    run = await manager.run_once("go")
    stored = await all_events(store, run.session_id)
    assert MessageStreamed("[REDACTED]") in [e.data for e in stored]
    assert plugin.durable == stored
    assert plugin.lifecycle == ["session started", "starting running", "finished completed", "session completed"]


class ToolProvider:
    """Asks for approval before 'running' a tool, as API providers do."""

    name = "tools"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities(tools=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        await emit(ToolCallStarted("t1", "delete_files", {"path": "/tmp/x"}))
        allowed = await emit.request_approval("t1", "delete_files", {"path": "/tmp/x"})
        return RunResult(output="deleted" if allowed else "refused")


class Approver:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked: list[ApprovalRequested] = []

    @asm.hookimpl
    async def asm_approve_tool(self, request: ApprovalRequested, run: asm.Run) -> bool | None:
        self.asked.append(request)
        return self.answer


@pytest.mark.parametrize(
    ("answer", "output", "event"),
    [
        (True, "deleted", T.APPROVAL_GRANTED),
        (False, "refused", T.APPROVAL_DENIED),
        (None, "refused", T.APPROVAL_DENIED),
    ],
)
async def test_approval_hook_answers_tool_calls(
    store: InMemorySessionStore, answer: bool | None, output: str, event: EventType
) -> None:
    approver = Approver(answer)
    registry = asm.load_plugins(entry_points=False, extra=[approver])
    run = await SessionManager(store, provider=ToolProvider(), plugins=registry).run_once("clean up")
    assert run.output == output
    assert approver.asked == [ApprovalRequested("t1", "delete_files", {"path": "/tmp/x"})]
    kinds = types(await all_events(store, run.session_id))
    assert kinds[kinds.index(T.APPROVAL_REQUESTED) + 1] is event


async def test_concurrent_runs_in_one_session_share_one_gap_free_sequence(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider([f"{i}" for i in range(50)]), event_buffer_size=7)
    session = await manager.start_session()
    await manager.activate_session(session.id)
    runs = [await manager.start_run(session.id, f"run {i}") for i in range(8)]
    async with trio.open_nursery() as nursery:
        for run in runs:
            nursery.start_soon(manager.execute_run, run.id)
    events = await all_events(store, session.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for run in runs:
        mine = [e.data.delta for e in events if e.run_id == run.id and isinstance(e.data, MessageStreamed)]
        assert mine == [f"{i}" for i in range(50)]
    assert all(isinstance(e.data, MessageReceived) is False for e in events)


class FanOutProvider:
    """Emits from several tasks at once, as a provider running tools in parallel does."""

    name = "fan-out"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        async def worker(n: int) -> None:
            for i in range(40):
                await emit(MessageStreamed(f"{n}.{i}"))

        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(worker, n)
        return RunResult(output="done")


async def test_concurrent_emitters_share_the_bounded_queue_without_losing_events(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=FanOutProvider(), event_buffer_size=3)
    run = await manager.run_once("go", on_event=lambda event: None)
    assert run.status is RunStatus.COMPLETED
    deltas = [e.data.delta for e in await all_events(store, run.session_id) if isinstance(e.data, MessageStreamed)]
    assert sorted(deltas) == sorted(f"{n}.{i}" for n in range(6) for i in range(40))
    for n in range(6):
        assert [d for d in deltas if d.startswith(f"{n}.")] == [f"{n}.{i}" for i in range(40)]


class SlowStore(InMemorySessionStore):
    """A store whose commits take a while, like a remote database."""

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        await trio.sleep(0.02)
        return await super().append_events(events)


@pytest.mark.parametrize("cancel_after", [0.01, 0.03, 0.05, 0.07, 0.09])
async def test_a_caller_cancelled_while_the_run_is_being_recorded_still_gets_a_final_run(cancel_after: float) -> None:
    store = SlowStore()
    manager = SessionManager(store, provider=ScriptedProvider(["a", "b"]))
    session = await manager.start_session()
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "go")
    with trio.move_on_after(cancel_after):
        await manager.execute_run(run.id)
    final = await store.get_run(run.id)
    assert final.status.is_terminal
    last = (await all_events(store, session.id))[-1]
    assert last.type is {RunStatus.COMPLETED: T.RUN_COMPLETED, RunStatus.CANCELLED: T.RUN_CANCELLED}[final.status]


class BrokenHooks:
    def __init__(self, which: str) -> None:
        self.which = which

    @asm.hookimpl
    def asm_run_starting(self, run: asm.Run) -> None:
        if self.which == "starting":
            raise RuntimeError("starting hook bug")

    @asm.hookimpl
    def asm_transform_event(self, event: Event) -> object:
        if self.which == "transform-raises" and event.type is T.MESSAGE_STREAMED:
            raise RuntimeError("transform bug")
        if self.which == "transform-returns-junk" and event.type is T.MESSAGE_STREAMED:
            return {"not": "an event"}
        return None


@pytest.mark.parametrize(
    ("which", "fragment"),
    [
        ("starting", "asm_run_starting hook raised"),
        ("transform-raises", "asm_transform_event raised"),
        ("transform-returns-junk", "must return None or an Event"),
    ],
)
async def test_a_broken_plugin_hook_fails_the_run_naming_the_hook(
    store: InMemorySessionStore, which: str, fragment: str
) -> None:
    registry = asm.load_plugins(entry_points=False, extra=[BrokenHooks(which)])
    run = await SessionManager(store, provider=ScriptedProvider(["x"]), plugins=registry).run_once("go")
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "internal_error" and fragment in run.error.message
    assert (await all_events(store, run.session_id))[-2].type is T.RUN_FAILED
    assert (await store.get_session(run.session_id)).status is SessionStatus.FAILED


async def test_a_failed_consumer_still_gets_the_run_recorded_as_ended(store: InMemorySessionStore) -> None:
    def broken(event: Event) -> None:
        if event.type is T.MESSAGE_STREAMED:
            raise ValueError("consumer bug")

    manager = SessionManager(store, provider=ScriptedProvider(["a"]))
    session = await manager.start_session()
    await manager.activate_session(session.id)
    run = await manager.execute_run((await manager.start_run(session.id, "go")).id, on_event=broken)
    assert run.status is RunStatus.FAILED and run.error is not None and "consumer bug" in run.error.message
    assert (await all_events(store, session.id))[-1].type is T.RUN_FAILED


async def test_a_consumer_failing_outside_a_run_raises_an_asm_error(store: InMemorySessionStore) -> None:
    def broken(event: Event) -> None:
        raise ValueError("consumer bug")

    with pytest.raises(AsmError) as caught:
        await SessionManager(store, on_event=broken).start_session()
    assert caught.value.code == "internal_error" and "session_created" in caught.value.message


async def test_provider_errors_a_provider_emits_itself_are_truncated(store: InMemorySessionStore) -> None:
    noisy = asm.events.ErrorOccurred(
        "provider_error", "retrying", ProviderError("cli", "process_error", "x", stderr="line\n" * 1000)
    )
    manager = SessionManager(store, provider=ScriptedProvider([noisy, "ok"]), error_text_max_lines=5)
    run = await manager.run_once("go")
    (stored,) = (await store.read_events(run.session_id, types=["error_occurred"])).events
    assert isinstance(stored.data, asm.events.ErrorOccurred) and stored.data.provider_error is not None
    assert stored.data.provider_error.truncated and stored.data.provider_error.stderr == "line\n" * 4 + "line"

    session = await manager.start_session()
    failed = await manager.fail_session(
        session.id, AsmError("provider_error", "x", details={"provider_error": noisy.provider_error})
    )
    assert failed.error is not None and failed.error.provider_error is not None
    assert failed.error.provider_error.truncated


class AsyncAbstainer:
    @asm.hookimpl
    async def asm_approve_tool(self, request: ApprovalRequested) -> bool | None:
        await trio.lowlevel.checkpoint()
        return None


async def test_an_async_approval_hook_that_abstains_passes_the_question_on(store: InMemorySessionStore) -> None:
    approver = Approver(True)
    registry = asm.load_plugins(entry_points=False, extra=[approver, AsyncAbstainer()])
    run = await SessionManager(store, provider=ToolProvider(), plugins=registry).run_once("clean up")
    assert run.output == "deleted" and len(approver.asked) == 1


# -- claiming: a pending run is executed once ---------------------------------------------


async def test_two_managers_executing_one_pending_run_run_it_once(store: InMemorySessionStore) -> None:
    first = SessionManager(store, provider=ScriptedProvider(["one", Delay(0.01), "two"]))
    second = SessionManager(store, provider=ScriptedProvider(["other"]))
    session = await first.start_session()
    await first.activate_session(session.id)
    pending = await first.start_run(session.id, "go")
    outcomes: list[object] = []

    async def execute(manager: SessionManager) -> None:
        try:
            outcomes.append(await manager.execute_run(pending.id))
        except AsmError as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute, first)
        nursery.start_soon(execute, second)
    (done,) = [o for o in outcomes if isinstance(o, asm.Run)]
    (refused,) = [o for o in outcomes if isinstance(o, AsmError)]
    assert done.status is RunStatus.COMPLETED
    assert refused.code == "invalid_operation" and "already running in process pid" in refused.message
    kinds = types(await all_events(store, session.id))
    assert kinds.count(T.RUN_STARTED) == 1 and kinds.count(T.RUN_COMPLETED) == 1
    assert done.owner is not None and done.owner.process.pid == os.getpid()


async def test_executing_a_run_already_running_elsewhere_is_refused_naming_its_owner(
    store: InMemorySessionStore,
) -> None:
    manager = SessionManager(store, provider=EchoProvider())
    session = await manager.start_session()
    await manager.activate_session(session.id)
    pending = await manager.start_run(session.id, "go")
    elsewhere = asm.RunOwner("host-b", asm.ProcessIdentity(4242, 1))
    await store.save_run(attrs.evolve(pending, status=RunStatus.RUNNING, owner=elsewhere))
    before = await all_events(store, session.id)
    with pytest.raises(AsmError) as caught:
        await manager.execute_run(pending.id)
    assert caught.value.code == "invalid_operation"
    assert "pid 4242 on host-b" in caught.value.message
    assert await all_events(store, session.id) == before  # the loser emits nothing


# -- run_once: every way out ends its one-shot session ----------------------------------


class FailingOnce(InMemorySessionStore):
    """Fails the first call of ``method`` (a store error, a full disk), then works."""

    def __init__(self, method: str, *, after: int = 0) -> None:
        super().__init__()
        self.method = method
        self.calls = 0
        self.after = after

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name != super().__getattribute__("method"):
            return attribute

        async def failing_once(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.after + 1:
                raise AsmError("storage_write_failed", "disk full; free space and retry")
            return await attribute(*args, **kwargs)

        return failing_once


@pytest.mark.parametrize(
    ("method", "after", "run_end"),
    [
        ("save_run", 0, None),  # start_run fails: no run stored
        ("claim_run", 0, T.RUN_CANCELLED),  # the pending run never starts
        ("append_events", 3, T.RUN_FAILED),  # a batch of the run's stream fails (the 2 session events came first)
        ("append_events", 5, T.RUN_COMPLETED),  # the run's end event fails; its record says completed
        ("save_run", 1, T.RUN_FAILED),  # the run's final state cannot be saved at first
    ],
)
async def test_run_once_ends_its_session_and_tells_the_runs_end_whatever_fails(
    method: str, after: int, run_end: EventType | None
) -> None:
    store = FailingOnce(method, after=after)
    # Each delay lets the run's writer commit what has queued: one append per chunk.
    manager = SessionManager(store, provider=ScriptedProvider(["a", Delay(0.01), "b", Delay(0.01), "c"]))
    try:
        run = await manager.run_once("go")
    except AsmError as exc:
        assert exc.code == "storage_write_failed"
    else:
        assert run.status is RunStatus.FAILED and run.error is not None
        assert run.error.code == "storage_write_failed"
    (session,) = await store.list_sessions()
    assert session.one_shot and session.status is SessionStatus.FAILED
    assert session.error is not None and session.error.code == "storage_write_failed"
    kinds = types(await all_events(store, session.id))
    assert kinds[-1] is T.SESSION_FAILED
    runs = await store.list_runs(session.id)
    if run_end is None:
        assert runs == []
    else:
        (stored,) = runs
        assert stored.status.is_terminal and kinds.count(run_end) == 1
        assert kinds.index(run_end) < kinds.index(T.SESSION_FAILED)


async def test_run_once_cancelled_by_its_caller_cancels_the_session(store: InMemorySessionStore) -> None:
    manager = SessionManager(store, provider=ScriptedProvider(["started", Stall()]))
    with trio.CancelScope() as caller:

        def on_event(event: Event) -> None:
            if event.type is EventType.MESSAGE_STREAMED:  # the run is under way: its caller gives up
                caller.cancel()

        await manager.run_once("go", on_event=on_event)
    (session,) = await store.list_sessions()
    assert session.status is SessionStatus.CANCELLED
    (run,) = await store.list_runs(session.id)
    assert run.status is RunStatus.CANCELLED
