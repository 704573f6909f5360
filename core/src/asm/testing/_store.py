"""The SessionStore contract suite (see :mod:`asm.testing`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing

from asm.errors import AsmError
from asm.events import (
    PAYLOADS,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ArtifactStored,
    CircuitClosed,
    CircuitHalfOpen,
    CircuitOpened,
    CostUpdated,
    ErrorOccurred,
    ErrorRecovered,
    Event,
    EventData,
    EventsCompacted,
    EventType,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    PolicyViolation,
    RouteFailedOver,
    RouteSelected,
    RouteSkip,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunQueued,
    RunRetrying,
    RunStarted,
    RunTimeout,
    SessionCancelled,
    SessionCompleted,
    SessionCreated,
    SessionFailed,
    SessionPaused,
    SessionResumed,
    SessionStarted,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TranscriptTruncated,
    TurnCompleted,
    WorkspaceDiffComputed,
    WorkspaceRolledBack,
    WorkspaceSnapshotTaken,
)
from asm.model import (
    Cost,
    ErrorInfo,
    ForkPoint,
    Message,
    ProcessIdentity,
    ProviderError,
    Run,
    RunInput,
    RunOwner,
    RunResult,
    Session,
    TokenUsage,
    utcnow,
)
from asm.ports import SessionStore
from asm.states import RunStatus, SessionStatus
from asm.testing._common import expect_asm_error, guard, unique

__all__ = ["SessionStoreContract", "sample_payloads"]

_PROVIDER_ERROR = ProviderError(
    provider="contract",
    kind="exit",
    message="process exited with 2",
    exit_code=2,
    stderr="Traceback (most recent call last):\n  boom\n",
    truncated=True,
)


def sample_payloads() -> list[EventData]:
    """At least one payload of every event type, with nested, unicode and
    numeric values, for round-trip checks."""
    return [
        SessionCreated("agent-ü", "contract"),
        SessionStarted(),
        SessionPaused("waiting for input"),
        SessionResumed(),
        SessionCompleted(),
        SessionFailed("provider_error", "provider failed", _PROVIDER_ERROR),
        SessionCancelled(None),
        RunQueued(3),
        RunStarted("contract", "model-1", continuation="replay"),
        MessageSent('héllo 👋\n"quoted" \\ back\tslash', "user"),
        MessageStreamed("Hel", None),
        MessageStreamed("warn: é\n", "stderr"),
        MessageReceived("Hello, wörld!", "assistant"),
        ThinkingStreamed("let me think… ∑"),
        ToolCallStarted(
            "call_1",
            "read_file",
            {"path": "src/a.py", "opts": {"n": 1, "ratio": 0.1, "ok": True, "none": None, "list": [1, "two", 3.25]}},
        ),
        ToolCallCompleted("call_1", "read_file", {"lines": ["a", "b"], "count": 2, "big": 2**40}),
        ToolCallCompleted("call_2", "echo", "plain text output"),
        ToolCallCompleted("call_3", "count", 42),
        ToolCallCompleted("call_4", "noop", None),
        ToolCallCompleted("call_5", "list", [1, {"a": None, "b": [False, -2.5]}]),
        ToolCallFailed("call_6", "write_file", "permission denied"),
        TokenUsageUpdated(TokenUsage(10, 20, 3, 4)),
        TurnCompleted(2),
        CostUpdated(Cost(0.1 + 0.2, 0.1, 0.2, 0.0, 0.000001), "model-1"),
        RunCompleted("end_turn", TokenUsage(1, 2, 0, 0), "model-1"),
        RunFailed("provider_rate_limited", "slow down; retry later", True, _PROVIDER_ERROR),
        RunCancelled("user pressed ctrl-c"),
        RunTimeout(1.5),
        RunRetrying(1, 0.25, "provider_rate_limited", "slow down"),
        RunInterrupted(2, "worker w-ü (host, pid 42)", "resume"),
        PolicyViolation("budget", "max_tokens", "cancel", {"limit": 100, "used": 150, "ratio": 1.5}),
        ApprovalRequested("call_7", "bash", {"command": "ls -la"}, "tools"),
        ApprovalGranted("call_7", "bash"),
        ApprovalDenied("call_8", "bash", "not on the allow-list"),
        WorkspaceSnapshotTaken("before", "git", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
        WorkspaceDiffComputed(3, 10, 2, "runs/run_1/patch.diff"),
        WorkspaceRolledBack("0123abcd", "failed", ("a.txt", "new/b.txt")),
        ArtifactStored("runs/run_1/out.txt", 1234, "text/plain"),
        ErrorOccurred("provider_unavailable", "connection reset; retrying", None),
        ErrorRecovered("provider_unavailable", "retry succeeded"),
        TranscriptTruncated(12, 3, 40, 9_500, 10_000),
        RouteSelected(
            "smart",
            "fast",
            "weighted",
            2,
            "claude-haiku-4-5",
            (RouteSkip("deep", "over_budget", "estimated $0.42 > $0.10 left"), RouteSkip("ü", "circuit_open", "")),
        ),
        RouteFailedOver("smart", "deep", 1, "provider_unavailable", "529 overloaded"),
        CircuitOpened("smart", "deep", None, 5, 30.0, "provider_unavailable"),
        CircuitHalfOpen("smart", "deep", "claude-opus-4-1"),
        CircuitClosed("smart", "deep"),
        EventsCompacted(3, 9, 7, "run_1"),
    ]


def _seqs(events: Sequence[Event]) -> list[int | None]:
    return [event.seq for event in events]


class SessionStoreContract:
    """Behavioural contract of :class:`asm.ports.SessionStore`.

    Subclass it in a test module and supply a ``store`` fixture yielding an
    opened store; every test method then runs against it. The suite only uses
    fresh ids, so the fixture may hand out a new store per test or one shared
    store. See :mod:`asm.testing` for the flags.
    """

    pytestmark = pytest.mark.trio

    #: The store is safe when many tasks call ``append_events`` at once (the
    #: manager does this when several runs of one session execute together).
    #: ``False`` makes the suite serialize its concurrent appends with a lock.
    supports_concurrent_writers: ClassVar[bool] = True

    #: Seconds the suite waits for something that should happen at once before
    #: failing instead of hanging (a guard, never a performance bound).
    wait_limit: ClassVar[float] = 30.0

    #: Seconds passed as ``timeout`` when the suite expects ``wait_for_events``
    #: to time out with an empty page.
    short_timeout: ClassVar[float] = 0.05

    # -- helpers -------------------------------------------------------------

    async def _new_session(self, store: SessionStore, **changes: Any) -> Session:
        session = Session(id=unique("ses"), agent_id=unique("agent"), provider="contract")
        session = attrs.evolve(session, **changes)
        await store.save_session(session)
        return session

    async def _new_run(self, store: SessionStore, session_id: str, **changes: Any) -> Run:
        run_id = unique("run")
        run_input = RunInput((Message("user", "hello"),), session_id=session_id, run_id=run_id)
        run = attrs.evolve(Run(id=run_id, session_id=session_id, input=run_input, provider="contract"), **changes)
        await store.save_run(run)
        return run

    @staticmethod
    def _events(session_id: str, count: int, *, run_id: str | None = None, start: int = 0) -> list[Event]:
        return [
            Event.new(MessageStreamed(f"delta {start + i}"), session_id=session_id, run_id=run_id, provider="contract")
            for i in range(count)
        ]

    async def _read_all(self, store: SessionStore, session_id: str) -> list[Event]:
        page = await store.read_events(session_id)
        return list(page.events)

    # -- sessions and runs ---------------------------------------------------

    async def test_session_round_trips_equal(self, store: SessionStore) -> None:
        """A saved session reads back ``==`` to what was saved, with every field
        (status, datetimes, metadata, tags, ErrorInfo with ProviderError).

        Failing means the store loses or reshapes a field: naive/truncated
        datetimes, JSON turning tuples or ints into something else, a dropped
        ``error``.
        """
        parent = await self._new_session(store)
        session = Session(
            id=unique("ses"),
            agent_id=unique("agent"),
            status=SessionStatus.FAILED,
            provider="contract",
            created_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            updated_at=datetime(2024, 3, 1, 0, 0, 1, 123, tzinfo=UTC),
            parent_session_id=parent.id,
            metadata={"user": "zoë", "n": 3, "ratio": 0.25, "flags": [True, False, None], "nested": {"k": ["v", 1]}},
            tags=("alpha", "beta"),
            error=ErrorInfo("provider_error", "provider failed", False, _PROVIDER_ERROR, {"attempt": 2}),
            one_shot=True,
            forked_from=ForkPoint(parent.id, 3),
        )
        await store.save_session(session)
        got = await store.get_session(session.id)
        assert got == session, f"get_session returned {got!r}, but {session!r} was saved"
        plain = await self._new_session(store)
        assert await store.get_session(plain.id) == plain, "a session with default fields did not round-trip"

    async def test_save_session_replaces(self, store: SessionStore) -> None:
        """Saving a session with an existing id replaces it (no duplicate, no
        stale fields). Failing means ``save_session`` only inserts, or merges."""
        session = await self._new_session(store, metadata={"old": True})
        changed = attrs.evolve(session, status=SessionStatus.ACTIVE, metadata={"new": 1}, updated_at=utcnow())
        await store.save_session(changed)
        assert await store.get_session(session.id) == changed
        listed = await store.list_sessions(agent_id=session.agent_id)
        assert listed == [changed], f"after replacing, list_sessions gave {listed!r}; expected just the new version"

    async def test_run_round_trips_equal(self, store: SessionStore) -> None:
        """A saved run reads back ``==``: its RunInput (messages and options),
        RunResult with TokenUsage and Cost, ErrorInfo, datetimes, metadata and
        model (a failed run has a model but no result).

        Failing means the store loses or reshapes a field of ``Run``.
        """
        session = await self._new_session(store)
        run_id = unique("run")
        completed = Run(
            id=run_id,
            session_id=session.id,
            input=RunInput(
                (
                    Message("system", "be brief"),
                    Message("user", "héllo"),
                    Message("assistant", "hi"),
                    Message("user", "?"),
                ),
                options={"model": "m-1", "max_turns": 3, "temperature": 0.5, "stop": ["\n\n"], "extra": None},
                session_id=session.id,
                run_id=run_id,
            ),
            status=RunStatus.COMPLETED,
            provider="contract",
            created_at=datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC),
            started_at=datetime(2024, 5, 1, 12, 0, 1, 500000, tzinfo=UTC),
            ended_at=datetime(2024, 5, 1, 12, 0, 9, 999999, tzinfo=UTC),
            result=RunResult(
                output="the answer ✓",
                stop_reason="end_turn",
                usage=TokenUsage(11, 22, 5, 6),
                model="m-1",
                cost=Cost(0.1 + 0.2, 0.1, 0.2, 0.0, 0.0),
                metadata={"response_id": "resp_1", "turns": [1, 2]},
            ),
            usage=TokenUsage(11, 22, 5, 6),
            metadata={"ticket": "T-1", "priority": 2},
            model="m-1",
        )
        failed = Run(
            id=unique("run"),
            session_id=session.id,
            input=RunInput((Message("user", "x"),), session_id=session.id),
            status=RunStatus.FAILED,
            provider="contract",
            started_at=utcnow(),
            ended_at=utcnow(),
            error=ErrorInfo("provider_rate_limited", "slow down", True, _PROVIDER_ERROR, {"retry_after": 1.5}),
            model="m-2",
        )
        for run in (completed, failed):
            await store.save_run(run)
            got = await store.get_run(run.id)
            assert got == run, f"get_run returned {got!r}, but {run!r} was saved"

    async def test_save_run_replaces(self, store: SessionStore) -> None:
        """Saving a run with an existing id replaces it. Failing means the
        manager's status updates (pending -> running -> completed) are lost."""
        session = await self._new_session(store)
        run = await self._new_run(store, session.id)
        running = attrs.evolve(run, status=RunStatus.RUNNING, started_at=utcnow())
        await store.save_run(running)
        done = attrs.evolve(running, status=RunStatus.COMPLETED, ended_at=utcnow(), result=RunResult(output="ok"))
        await store.save_run(done)
        assert await store.get_run(run.id) == done
        runs = await store.list_runs(session.id)
        assert runs == [done], f"after replacing, list_runs gave {runs!r}; expected just the final version"

    async def test_claim_run_is_a_compare_and_set(self, store: SessionStore) -> None:
        """``claim_run`` saves a run moving ``pending -> running`` only if the stored
        copy is still ``pending``: of concurrent claims exactly one wins, the others
        get ``invalid_operation`` and change nothing; a running or ended run cannot be
        claimed. The winner's owner reads back. Failing means two processes (or a
        process and a SessionServer) both execute one run."""
        session = await self._new_session(store)
        run = await self._new_run(store, session.id)
        owners = [
            RunOwner(f"host-{i}", ProcessIdentity(1000 + i, 7), "boot", (ProcessIdentity(2000 + i, 9),))
            for i in range(8)
        ]
        outcomes: dict[str, str] = {}

        async def claim(owner: RunOwner) -> None:
            try:
                await store.claim_run(attrs.evolve(run, status=RunStatus.RUNNING, started_at=utcnow(), owner=owner))
            except AsmError as exc:
                outcomes[owner.host] = exc.code
            else:
                outcomes[owner.host] = "claimed"

        with guard(self.wait_limit, "8 concurrent claim_run calls"):
            async with trio.open_nursery() as nursery:
                for owner in owners:
                    nursery.start_soon(claim, owner)
        winners = [host for host, outcome in outcomes.items() if outcome == "claimed"]
        assert len(winners) == 1, f"claims of one pending run ended {outcomes}; exactly one must win"
        assert sorted(outcomes.values()) == ["claimed"] + ["invalid_operation"] * 7, outcomes
        stored = await store.get_run(run.id)
        winner = next(owner for owner in owners if owner.host == winners[0])
        assert stored.status is RunStatus.RUNNING and stored.owner == winner, f"stored {stored!r}"
        with expect_asm_error("invalid_operation", "claim_run of a running run"):
            await store.claim_run(attrs.evolve(stored, owner=owners[0]))
        done = attrs.evolve(stored, status=RunStatus.COMPLETED, ended_at=utcnow())
        await store.save_run(done)
        with expect_asm_error("invalid_operation", "claim_run of a completed run"):
            await store.claim_run(attrs.evolve(run, status=RunStatus.RUNNING, owner=owners[0]))
        assert await store.get_run(run.id) == done, "a refused claim changed the stored run"

    async def test_fork_session_copies_the_first_events_and_leaves_the_original(self, store: SessionStore) -> None:
        """``fork_session(id, at_seq=n)`` makes a new ``pending`` session (``forked_from``
        recorded) whose log is the first ``n`` events - same types, data, times and
        runs, new ids, seqs 1..n - and leaves the original as it was; ``at_seq`` outside
        1..latest is ``validation_error``, an unknown session ``session_not_found``.
        Failing means "edit a message and regenerate" (fork + new run) loses or
        changes history."""
        original = await self._new_session(store, status=SessionStatus.COMPLETED)
        await store.append_events(self._events(original.id, 7, run_id=unique("run")))
        before = await self._read_all(store, original.id)
        fork = await store.fork_session(original.id, at_seq=4)
        assert fork.id != original.id and fork.status is SessionStatus.PENDING
        assert fork.forked_from == ForkPoint(original.id, 4) and fork.agent_id == original.agent_id
        assert await store.get_session(fork.id) == fork
        copied = await self._read_all(store, fork.id)
        assert [e.seq for e in copied] == [1, 2, 3, 4]
        assert [(e.type, e.data, e.at, e.run_id, e.provider) for e in copied] == [
            (e.type, e.data, e.at, e.run_id, e.provider) for e in before[:4]
        ], "the fork's history is the original's first events"
        assert not {e.id for e in copied} & {e.id for e in before}, "copies get ids of their own"
        assert await self._read_all(store, original.id) == before, "the original is untouched"
        await store.append_events(self._events(fork.id, 1))
        assert await store.latest_seq(fork.id) == 5 and await store.latest_seq(original.id) == 7
        for bad in (0, 8, -1):
            with expect_asm_error("validation_error", f"fork_session(at_seq={bad})"):
                await store.fork_session(original.id, at_seq=bad)
        with expect_asm_error("session_not_found", "fork_session of an unknown session"):
            await store.fork_session(unique("ses"), at_seq=1)

    # -- compaction ------------------------------------------------------------

    @staticmethod
    def _run_events(session_id: str, run_id: str, shape: str, *, at: datetime | None = None) -> list[Event]:
        """A run's events from a shape: ``s`` run_started, ``d`` a delta, ``t`` a thinking
        delta, ``c``/``r`` a tool call and its result, ``m`` message_received, ``E`` run_completed,
        ``F`` run_failed."""
        call = f"call_{run_id[-4:]}"

        def made(c: str, i: int) -> EventData:
            return {
                "s": RunStarted("contract"),
                "d": MessageStreamed(f"{run_id[-4:]}-{i} "),
                "t": ThinkingStreamed(f"hmm {i}"),
                "c": ToolCallStarted(call, "read", {"i": i}),
                "r": ToolCallCompleted(call, "read", "ok"),
                "m": MessageReceived(f"answer of {run_id[-4:]}"),
                "E": RunCompleted("end_turn"),
                "F": RunFailed("provider_error", "boom"),
            }[c]

        events = [
            Event.new(made(c, i), session_id=session_id, run_id=run_id, provider="contract")
            for i, c in enumerate(shape)
        ]
        return events if at is None else [attrs.evolve(e, at=at) for e in events]

    @staticmethod
    def _covered(seen: Sequence[Event]) -> list[int]:
        """The seqs a reader was told about: each event's, and each marker's range."""
        seqs: list[int] = []
        for event in seen:
            if isinstance(event.data, EventsCompacted):
                seqs += range(event.data.first_seq, event.data.last_seq + 1)
            else:
                assert event.seq is not None
                seqs.append(event.seq)
        return seqs

    async def test_compact_events_replaces_redundant_deltas_by_markers(self, store: SessionStore) -> None:
        """``compact_events`` replaces each range of one run's ``message_streamed`` deltas
        - of ended runs whose ``message_received`` is stored - by an ``events_compacted``
        marker at the range's last seq (``first_seq``, ``last_seq``, ``count``, ``run_id``)
        and leaves every other event, every seq and ``latest_seq`` as they were: the
        deltas of a run without an answer or still running stay, thinking deltas and
        tool calls end a range, interleaved runs get a marker each. A second call finds
        nothing; ``older_than`` limits it to runs that ended before; an unknown session
        is ``session_not_found``. Failing means compaction loses data the transcript
        needs, renumbers the log, or leaves a reader a gap it cannot account for."""
        session = await self._new_session(store)
        answered, unanswered, running, one, two = (unique("run") for _ in range(5))
        events = self._run_events(session.id, answered, "sdddtddcrdmE")
        events += self._run_events(session.id, unanswered, "sddF")
        events += self._run_events(session.id, running, "sddm")
        # Two runs at once: their deltas alternate.
        first, second = self._run_events(session.id, one, "sdddmE"), self._run_events(session.id, two, "sdddmE")
        events += [first[0], second[0], first[1], second[1], first[2], first[3], second[2], second[3]]
        events += [first[4], second[4], first[5], second[5]]
        stored = await store.append_events(events)
        latest = await store.latest_seq(session.id)

        cutoff = min(e.at for e in stored) - timedelta(seconds=1)
        nothing = await store.compact_events(session.id, older_than=cutoff)
        assert (nothing.deltas, nothing.markers) == (0, 0), "older_than before every run's end compacts nothing"
        done = await store.compact_events(session.id)
        after = await self._read_all(store, session.id)
        markers = [e for e in after if isinstance(e.data, EventsCompacted)]
        # answered: d2-4, d6-7 (thinking between), d10 (a tool call between); one: d1 and d2-3 (two's d
        # between); two: d1 and d2-3.
        s = {e.id: e.seq for e in stored}
        expect = [
            (s[events[1].id], s[events[3].id], 3, answered),
            (s[events[5].id], s[events[6].id], 2, answered),
            (s[events[9].id], s[events[9].id], 1, answered),
        ]
        expect += [
            (stored[i].seq, stored[j].seq, n, run)
            for i, j, n, run in ((22, 22, 1, one), (23, 23, 1, two), (24, 25, 2, one), (26, 27, 2, two))
        ]
        got = [(m.data.first_seq, m.data.last_seq, m.data.count, m.data.run_id) for m in markers]  # type: ignore[attr-defined]
        assert sorted(got, key=lambda g: g[0] or 0) == sorted(expect, key=lambda g: g[0] or 0), got
        assert all(m.seq == m.data.last_seq and m.run_id == m.data.run_id for m in markers)  # type: ignore[attr-defined]
        assert (done.deltas, done.markers, done.runs, done.removed) == (12, 7, 3, 5)
        kept = [e for e in stored if not (e.type is EventType.MESSAGE_STREAMED and e.run_id in (answered, one, two))]
        assert [e for e in after if not isinstance(e.data, EventsCompacted)] == kept, "every other event stays"
        assert self._covered(after) == list(range(1, latest + 1)), "each seq is an event or under a marker"
        assert await store.latest_seq(session.id) == latest
        deltas = (await store.read_events(session.id, types=["message_streamed"])).events
        assert {e.type for e in deltas} == {EventType.MESSAGE_STREAMED, EventType.EVENTS_COMPACTED}, (
            "a types filter with message_streamed also returns the markers"
        )
        again = await store.compact_events(session.id)
        assert (again.deltas, again.markers) == (0, 0) and await self._read_all(store, session.id) == after
        appended = await store.append_events(self._events(session.id, 1))
        assert appended[0].seq == latest + 1, "appends go on after the last seq, not into a compacted hole"
        with expect_asm_error("session_not_found", "compact_events of an unknown session"):
            await store.compact_events(unique("ses"))

    async def test_compaction_keeps_storage_to_the_messages(self, store: SessionStore) -> None:
        """A session of 20 answered runs of 50 deltas each holds, once compacted, 4 events
        per run (start, marker, answer, end), and a fork of it is as dense, its markers
        renumbered to the seq each holds in the fork. Failing means a long-lived
        session's storage grows with every delta ever streamed."""
        session = await self._new_session(store)
        for _ in range(20):
            await store.append_events(self._run_events(session.id, unique("run"), "s" + "d" * 50 + "mE"))
        done = await store.compact_events(session.id)
        assert (done.deltas, done.markers, done.removed) == (1000, 20, 980)
        after = await self._read_all(store, session.id)
        assert len(after) == 80 and await store.latest_seq(session.id) == 20 * 53
        fork = await store.fork_session(session.id, at_seq=53 * 10)
        copied = await self._read_all(store, fork.id)
        assert [e.seq for e in copied] == list(range(1, 41)), "a fork's log is dense"
        forked = [e for e in copied if isinstance(e.data, EventsCompacted)]
        assert [(e.data.first_seq, e.data.last_seq, e.data.count) for e in forked] == [  # type: ignore[attr-defined]
            (e.seq, e.seq, 50) for e in forked
        ]

    async def test_a_reader_paging_across_compaction_misses_nothing(self, store: SessionStore) -> None:
        """A reader paging from seq 1 (2 events a page) while runs are appended and
        compaction runs between its pages - at every point of the log - gets each event
        or the marker covering it, exactly once: no silent gap, no event twice, seqs
        increasing. Failing means a subscriber replaying a session loses or repeats
        events when retention compacts it under its feet."""
        shape = "sdddmE"
        for stop in range(9):
            session = await self._new_session(store)
            runs = [unique("run") for _ in range(3)]
            await store.append_events(self._run_events(session.id, runs[0], shape))
            await store.append_events(self._run_events(session.id, runs[1], shape[:4]))  # still streaming
            seen: list[Event] = []
            cursor = pages = 0
            while True:
                if pages == stop:  # the second run ends, a third starts, then compaction
                    await store.append_events(self._run_events(session.id, runs[1], shape[4:]))
                    await store.append_events(self._run_events(session.id, runs[2], shape[:3]))
                    await store.compact_events(session.id)
                    await store.append_events(self._run_events(session.id, runs[2], shape[3:]))
                page = await store.read_events(session.id, after=cursor, limit=2)
                pages += 1
                seen += page.events
                cursor = page.cursor
                if not page.has_more and pages > stop:
                    break
            ids = [e.id for e in seen]
            assert len(ids) == len(set(ids)), f"an event was read twice (compaction before page {stop + 1})"
            assert [e.seq or 0 for e in seen] == sorted({e.seq or 0 for e in seen}), "seqs must increase"
            covered = self._covered(seen)
            latest = await store.latest_seq(session.id)
            assert sorted(set(covered)) == list(range(1, latest + 1)), (
                f"compaction before page {stop + 1}: seqs {sorted(set(range(1, latest + 1)) - set(covered))} "
                "were neither read nor covered by a marker"
            )

    async def test_compaction_beside_an_appender_and_a_follower(self, store: SessionStore) -> None:
        """Compaction running again and again while another task appends run after run
        and a follower long-polls (``wait_for_events``) from seq 1: the follower gets
        each event or a marker covering it, once, and the log ends compacted. Failing
        means compaction loses or corrupts events appended meanwhile, or a live
        subscriber sees a silent gap."""
        session = await self._new_session(store)
        runs = [unique("run") for _ in range(6)]
        seen: list[Event] = []
        finished = trio.Event()

        async def appender() -> None:
            for run_id in runs:
                events = self._run_events(session.id, run_id, "sddddmE")
                for start in range(0, len(events), 3):
                    await store.append_events(events[start : start + 3])
                    await trio.lowlevel.checkpoint()
            finished.set()

        async def compactor() -> None:
            while not finished.is_set():
                await store.compact_events(session.id)
                await trio.lowlevel.checkpoint()
            await store.compact_events(session.id)

        async def follower() -> None:
            cursor = 0
            while not (seen and seen[-1].type is EventType.RUN_COMPLETED and seen[-1].run_id == runs[-1]):
                page = await store.wait_for_events(session.id, after=cursor, timeout=None, limit=3)
                seen.extend(page.events)
                cursor = page.cursor

        with guard(self.wait_limit, "an appender, a compactor and a follower of one session"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follower)
                nursery.start_soon(compactor)
                nursery.start_soon(appender)
        latest = await store.latest_seq(session.id)
        assert latest == 6 * 7
        ids = [e.id for e in seen]
        assert len(ids) == len(set(ids)), "the follower got an event twice"
        assert sorted(set(self._covered(seen))) == list(range(1, latest + 1)), "the follower missed events"
        final = await self._read_all(store, session.id)
        assert len(final) == 6 * 4 and self._covered(final) == list(range(1, latest + 1))

    async def test_unknown_ids_raise_not_found(self, store: SessionStore) -> None:
        """``get_session`` / ``get_run`` of an unknown id raise ``AsmError`` with
        code ``session_not_found`` / ``run_not_found``. Failing means callers get
        ``KeyError``, ``None`` or a generic error they cannot tell apart."""
        with expect_asm_error("session_not_found", "get_session of an unknown id"):
            await store.get_session(unique("ses"))
        with expect_asm_error("run_not_found", "get_run of an unknown id"):
            await store.get_run(unique("run"))

    async def test_list_sessions_filters_orders_and_pages(self, store: SessionStore) -> None:
        """``list_sessions`` filters by status and agent_id, orders newest
        first (by ``created_at``) and applies ``offset`` then ``limit``.

        Failing means wrong filtering, oldest-first ordering, or paging that
        skips or repeats sessions.
        """
        agent = unique("agent")
        base = datetime(2030, 1, 1, tzinfo=UTC)
        statuses = [
            SessionStatus.ACTIVE,
            SessionStatus.COMPLETED,
            SessionStatus.ACTIVE,
            SessionStatus.FAILED,
            SessionStatus.COMPLETED,
        ]
        sessions = [
            Session(id=unique("ses"), agent_id=agent, status=status, created_at=base + timedelta(minutes=i))
            for i, status in enumerate(statuses)
        ]
        for session in (sessions[2], sessions[0], sessions[4], sessions[1], sessions[3]):  # not in time order
            await store.save_session(session)
        other = await self._new_session(store, status=SessionStatus.ACTIVE)
        newest_first = [s.id for s in reversed(sessions)]

        listed = [s.id for s in await store.list_sessions(agent_id=agent)]
        assert listed == newest_first, "list_sessions(agent_id=...) must return that agent's sessions, newest first"

        active = [s.id for s in await store.list_sessions(agent_id=agent, status=SessionStatus.ACTIVE)]
        assert active == [sessions[2].id, sessions[0].id], "status and agent_id filters must combine"

        completed = await store.list_sessions(status=SessionStatus.COMPLETED)
        assert all(s.status is SessionStatus.COMPLETED for s in completed), "status filter let others through"
        completed_ids = {s.id for s in completed}
        assert {sessions[1].id, sessions[4].id} <= completed_ids, "status filter dropped matching sessions"
        assert other.id not in completed_ids
        assert other.id in {s.id for s in await store.list_sessions()}, "list_sessions() must list every session"

        assert [s.id for s in await store.list_sessions(agent_id=agent, limit=2)] == newest_first[:2]
        assert [s.id for s in await store.list_sessions(agent_id=agent, limit=2, offset=1)] == newest_first[1:3]
        assert [s.id for s in await store.list_sessions(agent_id=agent, offset=3)] == newest_first[3:]
        assert await store.list_sessions(agent_id=agent, offset=10) == []
        assert await store.list_sessions(agent_id=unique("agent")) == [], "unknown agent_id must list nothing"

    async def test_list_runs_oldest_first_with_status_filter(self, store: SessionStore) -> None:
        """``list_runs`` gives one session's runs, oldest first (by
        ``created_at``), optionally filtered by status; an unknown session has
        none. Failing means runs leak across sessions or come back unordered."""
        session = await self._new_session(store)
        other = await self._new_session(store)
        base = datetime(2030, 6, 1, tzinfo=UTC)
        statuses = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.PENDING]
        runs = [
            Run(
                id=unique("run"),
                session_id=session.id,
                input=RunInput((Message("user", f"prompt {i}"),), session_id=session.id),
                status=status,
                created_at=base + timedelta(seconds=i),
            )
            for i, status in enumerate(statuses)
        ]
        for run in (runs[3], runs[1], runs[0], runs[2]):
            await store.save_run(run)
        await self._new_run(store, other.id)

        assert [r.id for r in await store.list_runs(session.id)] == [r.id for r in runs]
        completed = [r.id for r in await store.list_runs(session.id, status=RunStatus.COMPLETED)]
        assert completed == [runs[0].id, runs[2].id]
        assert await store.list_runs(session.id, status=RunStatus.TIMEOUT) == []
        assert await store.list_runs(unique("ses")) == []

    # -- appending -----------------------------------------------------------

    async def test_append_assigns_gap_free_seqs_per_session(self, store: SessionStore) -> None:
        """``append_events`` returns the events as stored: equal to the input
        with ``seq`` set to 1, 2, 3, ... per session, continuing across calls,
        and counted independently for each session (even within one batch).

        Failing means seqs are global, start at 0, have gaps, or the returned
        events differ from the ones given.
        """
        a = await self._new_session(store)
        b = await self._new_session(store)
        first = self._events(a.id, 3)
        stored = await store.append_events(first)
        assert stored == [e.with_seq(i + 1) for i, e in enumerate(first)], "append must return the events with seq set"

        a_more, b_events = self._events(a.id, 2, start=3), self._events(b.id, 3)
        mixed = [b_events[0], a_more[0], b_events[1], a_more[1], b_events[2]]
        stored = await store.append_events(mixed)
        assert _seqs(stored) == [1, 4, 2, 5, 3], "seqs must be per session, in the order given, even in one batch"
        assert await store.latest_seq(a.id) == 5
        assert await store.latest_seq(b.id) == 3
        assert _seqs(await self._read_all(store, a.id)) == [1, 2, 3, 4, 5]

    async def test_append_empty_batch(self, store: SessionStore) -> None:
        """Appending no events returns ``[]`` and changes nothing. Failing means
        an empty batch crashes (e.g. an INSERT with no rows)."""
        session = await self._new_session(store)
        assert await store.append_events([]) == []
        assert await store.latest_seq(session.id) == 0

    async def test_concurrent_appends_are_gap_free(self, store: SessionStore) -> None:
        """20 tasks appending 25 events each, in batches of different sizes,
        to two sessions at once: each session's log is exactly 1..250, every
        event once, and each task's events keep their order.

        Failing means seq assignment races (duplicates or gaps) - the read of
        the current max seq and the insert are not atomic.
        """
        sessions = [await self._new_session(store), await self._new_session(store)]
        lock = trio.Lock()
        sizes = (1, 2, 3, 5, 8, 13, 4)
        given: dict[int, list[Event]] = {}
        returned: dict[int, list[Event]] = {}

        async def writer(index: int) -> None:
            events = given[index] = self._events(sessions[index % 2].id, 25, start=index * 100)
            stored: list[Event] = []
            returned[index] = stored
            position, turn = 0, index
            while position < len(events):
                batch = events[position : position + sizes[turn % len(sizes)]]
                position, turn = position + len(batch), turn + 1
                if self.supports_concurrent_writers:
                    stored += await store.append_events(batch)
                else:
                    async with lock:
                        stored += await store.append_events(batch)

        with guard(self.wait_limit, "20 tasks appending concurrently"):
            async with trio.open_nursery() as nursery:
                for index in range(20):
                    nursery.start_soon(writer, index)

        for index in range(20):
            assert [e.id for e in returned[index]] == [e.id for e in given[index]], "append must return its events"
            seqs = [e.seq or 0 for e in returned[index]]
            assert seqs == sorted(seqs), "one task's successive appends must get increasing seqs"
        for parity, session in enumerate(sessions):
            mine = [e for index in range(parity, 20, 2) for e in returned[index]]
            assert sorted(e.seq or 0 for e in mine) == list(range(1, 251)), (
                f"session {parity}: the seqs append_events returned are not exactly 1..250"
            )
            log = await self._read_all(store, session.id)
            assert _seqs(log) == list(range(1, 251)), f"session {parity}: the stored log is not exactly 1..250"
            assert {e.id for e in log} == {e.id for e in mine}
            assert await store.latest_seq(session.id) == 250

    async def test_append_is_idempotent_by_event_id(self, store: SessionStore) -> None:
        """An event whose id is already stored is returned as first stored and
        not appended again, whether it comes in a later batch or twice in one.

        Failing means a retried append (after a timeout, say) duplicates events
        in the log.
        """
        session = await self._new_session(store)
        e1, e2, e3, e4 = self._events(session.id, 4)
        first = await store.append_events([e1, e2])
        again = await store.append_events([e2, e3])
        assert again[0] == first[1], "a re-sent event must be returned as first stored (same seq)"
        assert again[1] == e3.with_seq(3), "the new event after a re-sent one must get the next seq"
        twice = await store.append_events([e4, e4])
        assert twice == [e4.with_seq(4), e4.with_seq(4)], "an id twice in one batch must be stored once"
        log = await self._read_all(store, session.id)
        assert [e.id for e in log] == [e1.id, e2.id, e3.id, e4.id], "re-sent events must not be appended again"
        assert await store.latest_seq(session.id) == 4

    async def test_events_round_trip_equal(self, store: SessionStore) -> None:
        """Every event type, with nested, unicode and numeric payload values,
        reads back ``==`` to what ``append_events`` returned - including ``at``
        (to the microsecond, timezone-aware), ``provider``, ``run_id`` and
        ``schema_version``.

        Failing means the store's serialization is lossy (naive or truncated
        datetimes, floats, ints turned into strings, dropped keys).
        """
        session = await self._new_session(store)
        run = await self._new_run(store, session.id)
        payloads = sample_payloads()
        events = [
            Event.new(data, session_id=session.id, run_id=run.id if i % 3 else None, provider="contract")
            for i, data in enumerate(payloads)
        ]
        offset = timezone(timedelta(hours=5, minutes=30))
        events.append(
            Event(
                id=unique("evt"),
                session_id=session.id,
                run_id=None,
                data=MessageStreamed("far east"),
                at=datetime(2024, 12, 31, 23, 59, 59, 654321, tzinfo=offset),
                provider=None,
            )
        )
        stored = await store.append_events(events)
        read = await self._read_all(store, session.id)
        assert len(read) == len(stored)
        for mine, theirs in zip(stored, read, strict=True):
            assert theirs == mine, f"event read back differs from the one stored:\n{theirs!r}\n!=\n{mine!r}"
            assert type(theirs.data) is PAYLOADS[theirs.type]

    # -- reading -------------------------------------------------------------

    async def test_read_events_after_before_limit(self, store: SessionStore) -> None:
        """``read_events`` returns ``after < seq < before``, oldest first, at most
        ``limit``; ``cursor`` is the last seq returned (or ``after`` for an empty
        page) and ``has_more`` says whether matching events lie past the page.

        Failing means off-by-one bounds, a wrong cursor, or ``has_more`` set
        when a page merely happens to be full.
        """
        session = await self._new_session(store)
        await store.append_events(self._events(session.id, 10))

        page = await store.read_events(session.id)
        assert _seqs(page.events) == list(range(1, 11))
        assert (page.cursor, page.has_more) == (10, False)
        page = await store.read_events(session.id, after=3)
        assert _seqs(page.events) == list(range(4, 11))
        page = await store.read_events(session.id, before=4)
        assert _seqs(page.events) == [1, 2, 3], "before is exclusive"
        page = await store.read_events(session.id, after=2, before=6)
        assert _seqs(page.events) == [3, 4, 5]
        page = await store.read_events(session.id, limit=3)
        assert _seqs(page.events) == [1, 2, 3]
        assert (page.cursor, page.has_more) == (3, True)
        page = await store.read_events(session.id, after=7, limit=3)
        assert _seqs(page.events) == [8, 9, 10]
        assert (page.cursor, page.has_more) == (10, False), "an exactly full last page has has_more=False"
        page = await store.read_events(session.id, after=2, before=6, limit=2)
        assert _seqs(page.events) == [3, 4]
        assert page.has_more, "seq 5 matches past the page (before=6), so has_more must be True"
        page = await store.read_events(session.id, after=4, before=6, limit=2)
        assert (_seqs(page.events), page.has_more) == ([5], False), "events at or past before do not count"
        page = await store.read_events(session.id, after=10)
        assert (page.events, page.cursor, page.has_more) == ((), 10, False)
        page = await store.read_events(unique("ses"))
        assert (page.events, page.cursor, page.has_more) == ((), 0, False), "an unknown session reads as empty"

    async def test_read_events_filters_types_and_run(self, store: SessionStore) -> None:
        """``types=`` (EventType or str values) and ``run_id=`` filter the page
        (``types=[]`` matches nothing); an unknown type name is
        ``validation_error``.

        Failing means filters are ignored, strings and enum members are not
        both accepted, an empty list is taken for "no filter", or a typo in a
        type silently matches nothing.
        """
        session = await self._new_session(store)
        run_a = await self._new_run(store, session.id)
        run_b = await self._new_run(store, session.id)
        datas: list[tuple[EventData, str | None]] = [
            (RunStarted("contract"), run_a.id),
            (MessageStreamed("a1"), run_a.id),
            (MessageReceived("a"), run_a.id),
            (RunStarted("contract"), run_b.id),
            (MessageStreamed("b1"), run_b.id),
            (SessionCompleted(), None),
        ]
        stored = await store.append_events(
            [Event.new(d, session_id=session.id, run_id=r, provider="contract") for d, r in datas]
        )

        page = await store.read_events(session.id, types=[EventType.MESSAGE_STREAMED])
        assert [e.id for e in page.events] == [stored[1].id, stored[4].id]
        page = await store.read_events(session.id, types=["run_started", EventType.MESSAGE_RECEIVED])
        assert [e.id for e in page.events] == [stored[0].id, stored[2].id, stored[3].id]
        page = await store.read_events(session.id, run_id=run_b.id)
        assert [e.id for e in page.events] == [stored[3].id, stored[4].id]
        page = await store.read_events(session.id, run_id=run_a.id, types=["message_streamed"])
        assert [e.id for e in page.events] == [stored[1].id]
        page = await store.read_events(session.id, types=[])
        assert page.events == (), "an empty types filter matches nothing"
        with expect_asm_error("validation_error", "read_events with types=['no_such_type']"):
            await store.read_events(session.id, types=["no_such_type"])

    async def test_read_events_rejects_bad_arguments(self, store: SessionStore) -> None:
        """A negative ``after`` (or ``before`` < 1) is ``invalid_cursor``;
        ``limit=0`` or a negative limit is ``validation_error`` - for
        ``read_events`` and ``wait_for_events`` alike; so is anything past 2**63-1.

        Failing means bad input is silently clamped, which hides caller bugs
        (use :func:`asm.stores.validate_page_args`).
        """
        session = await self._new_session(store)
        await store.append_events(self._events(session.id, 2))
        with expect_asm_error("invalid_cursor", "read_events(after=-1)"):
            await store.read_events(session.id, after=-1)
        with expect_asm_error("invalid_cursor", "read_events(before=0)"):
            await store.read_events(session.id, before=0)
        with expect_asm_error("validation_error", "read_events(limit=0)"):
            await store.read_events(session.id, limit=0)
        with expect_asm_error("validation_error", "read_events(limit=-5)"):
            await store.read_events(session.id, limit=-5)
        with expect_asm_error("invalid_cursor", "wait_for_events(after=-1)"):
            await store.wait_for_events(session.id, after=-1, timeout=self.short_timeout)
        with expect_asm_error("validation_error", "wait_for_events(limit=0)"):
            await store.wait_for_events(session.id, after=0, timeout=self.short_timeout, limit=0)
        # Past a 64-bit integer: refused, not an OverflowError from the database driver.
        with expect_asm_error("invalid_cursor", "read_events(after=2**63)"):
            await store.read_events(session.id, after=2**63)
        with expect_asm_error("validation_error", "read_events(limit=2**64)"):
            await store.read_events(session.id, limit=2**64)

    async def test_paging_with_cursor_yields_every_event_once(self, store: SessionStore) -> None:
        """Following ``cursor`` page by page through a 250-event log (with page
        sizes that do and do not divide it, and with a types filter) yields
        every matching event exactly once, in order, ending with
        ``has_more=False``.

        Failing means replay from a cursor skips or repeats events - a
        subscriber resuming after a disconnect would lose or double events.
        """
        session = await self._new_session(store)
        events = [
            Event.new(
                MessageReceived(f"m{i}") if i % 3 == 0 else MessageStreamed(f"d{i}"),
                session_id=session.id,
                provider="contract",
            )
            for i in range(250)
        ]
        stored = await store.append_events(events)

        cases: list[tuple[int, list[str] | None, list[Event]]] = [
            (25, None, stored),
            (7, None, stored),
            (250, None, stored),
            (9, ["message_received"], [e for e in stored if e.type is EventType.MESSAGE_RECEIVED]),
        ]
        for limit, types, expected in cases:
            seen: list[Event] = []
            cursor, pages = 0, 0
            while True:
                page = await store.read_events(session.id, after=cursor, limit=limit, types=types)
                pages += 1
                assert pages <= len(stored) + 1, f"paging with limit={limit} does not terminate"
                assert len(page.events) <= limit
                assert page.cursor >= cursor, "the cursor must never move backwards"
                seen += page.events
                cursor = page.cursor
                if not page.has_more:
                    break
            assert [e.id for e in seen] == [e.id for e in expected], f"paging with limit={limit}, types={types}"
            tail = await store.read_events(session.id, after=cursor, types=types)
            assert tail.events == (), "reading past the final cursor must give nothing"

    # -- waiting -------------------------------------------------------------

    async def test_wait_for_events_returns_existing_events(self, store: SessionStore) -> None:
        """``wait_for_events`` returns at once, without waiting for new events,
        when events past ``after`` are already stored; ``limit`` caps the page.

        Failing (or hanging) means the long-poll only wakes on new appends and
        misses what arrived before it was called.
        """
        session = await self._new_session(store)
        stored = await store.append_events(self._events(session.id, 5))
        with guard(self.wait_limit, "wait_for_events with events already stored"):
            page = await store.wait_for_events(session.id, after=1, timeout=None)
            limited = await store.wait_for_events(session.id, after=0, timeout=None, limit=2)
        assert list(page.events) == stored[1:]
        assert list(limited.events) == stored[:2]
        assert limited.has_more

    async def test_wait_for_events_wakes_on_append(self, store: SessionStore) -> None:
        """A task waiting in ``wait_for_events`` (no timeout) is woken by another
        task's append to its session and returns the new event - and is not
        fooled by appends to other sessions.

        Failing (or hanging) means waiters are not notified on append, or wake
        with an empty page for another session's events.
        """
        session = await self._new_session(store)
        other = await self._new_session(store)
        await store.append_events(self._events(session.id, 2))
        results: list[Event] = []

        async def waiter() -> None:
            page = await store.wait_for_events(session.id, after=2, timeout=None)
            results.extend(page.events)

        with guard(self.wait_limit, "wait_for_events woken by an append"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                await store.append_events(self._events(other.id, 1))
                await trio.testing.wait_all_tasks_blocked()
                new = await store.append_events(self._events(session.id, 1, start=2))
        assert results, "wait_for_events returned an empty page without a timeout"
        assert results[0] == new[0], "wait_for_events must return the event appended while it waited"
        assert all(e.session_id == session.id for e in results)

    async def test_wait_for_events_times_out_empty(self, store: SessionStore) -> None:
        """With nothing past ``after``, ``wait_for_events`` returns an empty page
        (cursor ``after``) once ``timeout`` passes - also for an unknown session.

        Failing means a timeout raises instead of returning, or the call hangs.
        """
        session = await self._new_session(store)
        await store.append_events(self._events(session.id, 3))
        with guard(self.wait_limit, f"wait_for_events(timeout={self.short_timeout})"):
            page = await store.wait_for_events(session.id, after=3, timeout=self.short_timeout)
            unknown = await store.wait_for_events(unique("ses"), after=0, timeout=self.short_timeout)
        assert (page.events, page.cursor) == ((), 3)
        assert (unknown.events, unknown.cursor) == ((), 0)

    # -- latest_seq and delete -----------------------------------------------

    async def test_latest_seq(self, store: SessionStore) -> None:
        """``latest_seq`` is 0 for an unknown or empty session and the highest
        stored seq otherwise. Failing means it raises for unknown sessions or
        lags behind appends."""
        session = await self._new_session(store)
        assert await store.latest_seq(unique("ses")) == 0
        assert await store.latest_seq(session.id) == 0
        await store.append_events(self._events(session.id, 4))
        assert await store.latest_seq(session.id) == 4
        await store.append_events(self._events(session.id, 3, start=4))
        assert await store.latest_seq(session.id) == 7

    async def test_delete_session_removes_runs_and_events(self, store: SessionStore) -> None:
        """``delete_session`` removes the session, its runs and its events and
        leaves other sessions alone; deleting a missing session is a no-op.

        Failing means orphaned runs or events remain (retention would never
        free space), or deleting twice raises.
        """
        session = await self._new_session(store)
        run = await self._new_run(store, session.id)
        await store.append_events(self._events(session.id, 3, run_id=run.id))
        keep = await self._new_session(store)
        keep_run = await self._new_run(store, keep.id)
        kept = await store.append_events(self._events(keep.id, 2, run_id=keep_run.id))

        await store.delete_session(session.id)
        with expect_asm_error("session_not_found", "get_session after delete_session"):
            await store.get_session(session.id)
        with expect_asm_error("run_not_found", "get_run of a deleted session's run"):
            await store.get_run(run.id)
        assert await store.list_runs(session.id) == []
        assert (await store.read_events(session.id)).events == ()
        assert await store.latest_seq(session.id) == 0
        assert session.id not in {s.id for s in await store.list_sessions(agent_id=session.agent_id)}

        await store.delete_session(session.id)
        await store.delete_session(unique("ses"))
        assert await store.get_session(keep.id) == keep
        assert await store.get_run(keep_run.id) == keep_run
        assert list((await store.read_events(keep.id)).events) == kept
