"""The Provider contract suite (see :mod:`asm.testing`)."""

from __future__ import annotations

from typing import ClassVar

import pytest
import trio
import trio.testing

from asm.events import (
    LIFECYCLE_TYPES,
    PAYLOADS,
    Event,
    EventType,
    MessageStreamed,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.manager import SessionManager
from asm.model import Capabilities, Run, RunResult, Session
from asm.ports import Provider
from asm.serde import event_from_json, event_to_json
from asm.states import RunStatus
from asm.stores.memory import InMemorySessionStore
from asm.testing._common import background_tasks, guard

__all__ = ["ProviderContract"]


def _describe(run: Run) -> str:
    error = f": {run.error.code}: {run.error.message}" if run.error is not None else ""
    return f"run {run.id} ended {run.status.value}{error}"


class ProviderContract:
    """Behavioural contract of :class:`asm.ports.Provider`.

    Subclass it and supply a ``provider`` fixture; override ``slow_provider``
    (and/or :meth:`slow_input`) so that a run lasts until it is cancelled.
    Each test executes runs through a real :class:`~asm.manager.SessionManager`
    on an :class:`~asm.stores.memory.InMemorySessionStore`. See
    :mod:`asm.testing` for the flags.
    """

    pytestmark = pytest.mark.trio

    #: The input of ordinary runs: a prompt string, a list of messages or a
    #: ``RunInput`` (anything ``SessionManager.start_run`` accepts).
    prompt: ClassVar[object] = "hello"

    #: The provider streams its answer as ``message_streamed`` deltas, and the
    #: run's output is (the end of) that text. ``False``: it streams no text
    #: at all (e.g. it only runs tools), which the suite checks too.
    emits_text: ClassVar[bool] = True

    #: One provider object may execute several runs at once (the manager and
    #: SessionServer share it between sessions). ``False`` makes the suite run
    #: them one after another.
    supports_concurrent_runs: ClassVar[bool] = True

    #: Seconds given as the run timeout in the timeout test; the slow run
    #: must not finish sooner.
    run_timeout: ClassVar[float] = 0.25

    #: Seconds the suite waits for something that should happen at once before
    #: failing instead of hanging (a guard, never a performance bound).
    wait_limit: ClassVar[float] = 30.0

    @pytest.fixture
    def slow_provider(self, provider: Provider) -> Provider:
        """A provider whose run of :meth:`slow_input` lasts until cancelled
        (or at least far longer than ``run_timeout``); by default ``provider``.

        Override it for providers that finish fast, e.g.
        ``ScriptedProvider(["partial", Stall()])`` or ``EchoProvider(delay=60)``.
        """
        return provider

    def slow_input(self) -> object:
        """The input of the runs the suite cancels or times out; by default
        ``prompt``. Override it when a particular input is what makes the run
        slow (a long task, a command that sleeps)."""
        return self.prompt

    # -- helpers -------------------------------------------------------------

    async def _active_session(self, provider: Provider) -> tuple[SessionManager, Session]:
        manager = SessionManager(InMemorySessionStore(), provider=provider)
        session = await manager.start_session(agent_id="contract")
        await manager.activate_session(session.id)
        return manager, session

    async def _run_once(self, provider: Provider) -> tuple[SessionManager, Run]:
        manager = SessionManager(InMemorySessionStore(), provider=provider)
        with guard(self.wait_limit, f"a run of provider {provider.name!r}"):
            run = await manager.run_once(self.prompt)
        assert run.status is RunStatus.COMPLETED, f"{_describe(run)}; an ordinary run must complete"
        return manager, run

    @staticmethod
    async def _run_events(manager: SessionManager, run: Run) -> list[Event]:
        return list((await manager.store.read_events(run.session_id, run_id=run.id)).events)

    @staticmethod
    def _text(events: list[Event]) -> str:
        return "".join(
            e.data.delta for e in events if isinstance(e.data, MessageStreamed) and e.data.stream != "stderr"
        )

    async def _interrupt(self, provider: Provider, how: str) -> tuple[SessionManager, Run]:
        """Start a slow run, let it get going, stop it ``how``; return the stored run."""
        manager, session = await self._active_session(provider)
        run = await manager.start_run(session.id, self.slow_input())
        started = trio.Event()

        def on_event(event: Event) -> None:
            if event.type is EventType.RUN_STARTED:
                started.set()

        before = background_tasks()
        caller = trio.CancelScope()
        outcomes: list[Run] = []

        async def execute() -> None:
            with caller:
                outcomes.append(await manager.execute_run(run.id, on_event=on_event))

        with guard(self.wait_limit, f"cancelling a run of provider {provider.name!r} ({how})"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(execute)
                await started.wait()
                # Let the provider get as far as it can (typically waiting on I/O mid-stream).
                await trio.testing.wait_all_tasks_blocked()
                if how == "cancel_run":
                    outcomes.append(await manager.cancel_run(run.id, reason="contract test"))
                else:
                    caller.cancel()
        stored = await manager.get_run(run.id)
        assert stored.status is not RunStatus.COMPLETED, (
            f"{_describe(stored)} before it could be cancelled; make slow_provider / slow_input slower"
        )
        for outcome in outcomes:
            assert outcome == stored, f"execute_run / cancel_run returned {outcome!r}, but {stored!r} is stored"
        await trio.testing.wait_all_tasks_blocked()
        leaked = background_tasks() - before
        assert not leaked, f"the run left tasks behind: {sorted(t.name for t in leaked)}"
        return manager, stored

    # -- tests ---------------------------------------------------------------

    async def test_capabilities_and_name(self, provider: Provider) -> None:
        """``capabilities()`` returns an :class:`asm.Capabilities` (the same
        value each call) and ``name`` is a non-empty string. Failing means the
        router cannot match runs to this provider."""
        assert isinstance(provider, Provider), "the object lacks name, capabilities() or execute()"
        capabilities = provider.capabilities()
        assert isinstance(capabilities, Capabilities), f"capabilities() returned {capabilities!r}"
        assert provider.capabilities() == capabilities, "capabilities() must not change between calls"
        assert isinstance(provider.name, str), f"name is {provider.name!r}"
        assert provider.name.strip(), "name must not be empty"

    async def test_run_completes(self, provider: Provider) -> None:
        """A run of ``prompt`` through a SessionManager completes with a
        :class:`~asm.model.RunResult` and non-negative token counts, its events
        framed by the manager's ``run_started`` and ``run_completed``.

        Failing means ``execute`` raised, returned something else, emitted a
        lifecycle event (the manager rejects those) or a non-payload.
        """
        manager, run = await self._run_once(provider)
        assert isinstance(run.result, RunResult), f"execute returned {run.result!r}, not a RunResult"
        usage = run.usage
        counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
        assert all(isinstance(n, int) and n >= 0 for n in counts), f"token counts must be ints >= 0: {usage!r}"
        events = await self._run_events(manager, run)
        assert events[0].type is EventType.RUN_STARTED
        assert events[-1].type is EventType.RUN_COMPLETED

    async def test_emits_only_catalog_payloads(self, provider: Provider) -> None:
        """Every event of a run is a payload class from :mod:`asm.events`
        (exactly ``PAYLOADS[type]``), survives a JSON round trip through
        :mod:`asm.serde` unchanged, carries the provider's name, and the only
        lifecycle events are the manager's; each completed or failed tool call
        refers to a started one.

        Failing means the provider leaks raw wire objects (SDK models, tuples,
        bytes) into payloads, emits its own ``run_*`` events, or reports tool
        results for calls it never announced.
        """
        manager, run = await self._run_once(provider)
        events = await self._run_events(manager, run)
        lifecycle = [e.type for e in events if e.type in LIFECYCLE_TYPES]
        assert lifecycle == [EventType.RUN_STARTED, EventType.RUN_COMPLETED], f"lifecycle events: {lifecycle}"
        started: set[str] = set()
        for event in events:
            assert type(event.data) is PAYLOADS[event.type], f"{event.data!r} is not a {PAYLOADS[event.type]}"
            assert event.provider == provider.name, f"event {event.type} names provider {event.provider!r}"
            assert event_from_json(event_to_json(event)) == event, f"{event!r} does not survive a JSON round trip"
            if isinstance(event.data, ToolCallStarted):
                started.add(event.data.tool_call_id)
            elif isinstance(event.data, ToolCallCompleted | ToolCallFailed):
                assert event.data.tool_call_id in started, f"{event.data!r} ends a tool call that never started"

    async def test_streamed_text_matches_output(self, provider: Provider) -> None:
        """With ``emits_text``, the run streams ``message_streamed`` deltas and
        its final output (stripped) appears in their concatenation (stderr
        deltas aside); without it, no text is streamed.

        Failing means the output is assembled differently from what was
        streamed (lost or doubled chunks), or ``emits_text`` is set wrongly.
        """
        manager, run = await self._run_once(provider)
        streamed = self._text(await self._run_events(manager, run))
        if self.emits_text:
            assert streamed, "emits_text is set but the run streamed no message_streamed deltas"
            assert run.output.strip(), "emits_text is set but the run's output is empty"
            assert run.output.strip() in streamed, f"the output {run.output!r} is not in the streamed text {streamed!r}"
        else:
            assert streamed == "", f"emits_text is False but the run streamed {streamed!r}"

    async def test_concurrent_runs_stay_separate(self, provider: Provider) -> None:
        """One provider object executes three runs (concurrently, with
        ``supports_concurrent_runs``); each completes and its output comes
        from its own stream.

        Failing means the provider keeps per-run state on ``self`` (buffers,
        counters, a single connection), so runs interfere.
        """
        manager = SessionManager(InMemorySessionStore(), provider=provider)
        runs: list[Run] = []

        async def one() -> None:
            runs.append(await manager.run_once(self.prompt))

        with guard(self.wait_limit, f"three runs of provider {provider.name!r}"):
            if self.supports_concurrent_runs:
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(one)
            else:
                for _ in range(3):
                    await one()
        assert len(runs) == 3
        for run in runs:
            assert run.status is RunStatus.COMPLETED, _describe(run)
            events = await self._run_events(manager, run)
            assert {e.session_id for e in events} == {run.session_id}
            if self.emits_text:
                assert run.output.strip() in self._text(events), f"run {run.id}'s output is not from its own stream"

    async def test_cancel_run_stops_the_provider(self, slow_provider: Provider) -> None:
        """``manager.cancel_run`` from another task, while the slow run is in
        progress, ends it ``cancelled`` (last event ``run_cancelled``), lets
        ``execute_run`` return, and leaves no task behind.

        Failing means ``execute`` does not respond to trio cancellation (a
        blocking call outside ``trio.to_thread``, a shielded wait, an
        unkillable child process) - or the slow run finished on its own, in
        which case make ``slow_provider`` / ``slow_input`` slower.
        """
        manager, run = await self._interrupt(slow_provider, "cancel_run")
        assert run.status is RunStatus.CANCELLED, f"{_describe(run)}; cancel_run must end it cancelled"
        events = await self._run_events(manager, run)
        assert events[-1].type is EventType.RUN_CANCELLED, f"the last event is {events[-1].type}"

    async def test_caller_cancellation_stops_the_provider(self, slow_provider: Provider) -> None:
        """Cancelling the task that awaits ``execute_run`` (its caller's cancel
        scope) stops the provider, records the run ``cancelled`` and leaves no
        task behind.

        Failing means ``execute`` swallows ``trio.Cancelled`` or keeps working
        after it (the caller would hang, or the run would stay ``running``).
        """
        manager, run = await self._interrupt(slow_provider, "caller's cancel scope")
        assert run.status is RunStatus.CANCELLED, f"{_describe(run)}; a cancelled caller must leave it cancelled"
        events = await self._run_events(manager, run)
        assert events[-1].type is EventType.RUN_CANCELLED, f"the last event is {events[-1].type}"

    async def test_run_timeout(self, slow_provider: Provider) -> None:
        """A slow run given ``timeout=run_timeout`` ends with status
        ``timeout``, error code ``timeout`` and a final ``run_timeout`` event,
        and leaves no task behind.

        Failing means ``execute`` ignores cancellation by the run's deadline,
        or turns it into an error of its own.
        """
        manager, session = await self._active_session(slow_provider)
        run = await manager.start_run(session.id, self.slow_input())
        before = background_tasks()
        with guard(self.wait_limit, f"a run of {slow_provider.name!r} with timeout={self.run_timeout}"):
            ended = await manager.execute_run(run.id, timeout=self.run_timeout)
        assert ended.status is RunStatus.TIMEOUT, f"{_describe(ended)}; expected timeout"
        assert ended.error is not None
        assert ended.error.code == "timeout"
        events = await self._run_events(manager, ended)
        assert events[-1].type is EventType.RUN_TIMEOUT, f"the last event is {events[-1].type}"
        await trio.testing.wait_all_tasks_blocked()
        leaked = background_tasks() - before
        assert not leaked, f"the run left tasks behind: {sorted(t.name for t in leaked)}"
