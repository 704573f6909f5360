"""asm.continuity: a session's conversation rebuilt from its event log, tool pairs intact."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asm
from asm import AsmError, InMemorySessionStore, SessionManager
from asm.continuity import (
    INTERRUPTED,
    RESUME_PROMPT,
    Entry,
    Folded,
    Transcript,
    TranscriptCache,
    build_transcript,
    transcript,
)
from asm.events import (
    MessageReceived,
    MessageSent,
    MessageStreamed,
    RunCompleted,
    RunStarted,
    ThinkingStreamed,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.model import RESUME, RunInput, check_continuation
from asm.providers.scripted import Fail, ScriptedProvider, Stall
from asm.serde import structure, unstructure
from asm.testing.strategies import cut_session_logs


async def session_of(*scripts: list[Any]) -> tuple[InMemorySessionStore, str]:
    """One session, one run per script, in order."""
    store = InMemorySessionStore()
    manager = SessionManager(store)
    session = await manager.start_session(agent_id="a")
    await manager.activate_session(session.id)
    for index, script in enumerate(scripts):
        run = await manager.start_run(session.id, f"question {index}")
        await manager.execute_run(run.id, provider=ScriptedProvider(script), timeout=0.2)
    return store, session.id


def shape(t: Transcript) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for e in t.entries:
        if e.kind == "message":
            out.append(("message", e.role, e.content, "partial" if e.partial else ""))
        elif e.kind == "thinking":
            out.append(("thinking", e.content))
        elif e.kind == "tool_call":
            out.append(("call", e.tool_call_id or ""))
        else:
            out.append(("result", e.tool_call_id or "", "synthetic" if e.synthetic else ""))
    return out


async def test_runs_become_the_conversation_in_order_with_tool_pairs() -> None:
    store, sid = await session_of(
        ["hello ", "there", MessageReceived("hello there")],
        [
            ThinkingStreamed("let me look"),
            ToolCallStarted("t1", "read", {"path": "a.txt"}),
            ToolCallCompleted("t1", "read", "file text"),
            ToolCallStarted("t2", "grep", {}),
            ToolCallFailed("t2", "grep", "no match"),
            MessageReceived("found it"),
        ],
    )
    t = await transcript(store, sid)
    assert shape(t) == [
        ("message", "user", "question 0", ""),
        ("message", "assistant", "hello there", ""),
        ("message", "user", "question 1", ""),
        ("thinking", "let me look"),
        ("call", "t1"),
        ("result", "t1", ""),
        ("call", "t2"),
        ("result", "t2", ""),
        ("message", "assistant", "found it", ""),
    ]
    results = [e for e in t.entries if e.kind == "tool_result"]
    assert [(r.tool_output, r.is_error) for r in results] == [("file text", False), ("no match", True)]
    assert t.dropped == () and t.repaired == ()
    assert structure(unstructure(t), Transcript) == t, "round-trips through the one converter"


async def test_a_run_cut_mid_tool_gets_a_synthetic_result_and_is_marked_partial() -> None:
    store, sid = await session_of(
        ["working", ToolCallStarted("t1", "bash", {"cmd": "make"}), Stall()],  # times out mid-tool
        ["next answer", MessageReceived("next answer")],
    )
    t = await transcript(store, sid)
    assert shape(t) == [
        ("message", "user", "question 0", "partial"),
        ("call", "t1"),
        ("result", "t1", "synthetic"),
        ("message", "assistant", "working", "partial"),  # what it streamed stands in for its answer
        ("message", "user", "question 1", ""),
        ("message", "assistant", "next answer", ""),
    ]
    synthetic = t.entries[2]
    assert synthetic.tool_output == INTERRUPTED and synthetic.is_error and synthetic.partial
    assert t.repaired == ("t1",)


async def test_a_failed_run_keeps_what_it_streamed_marked_partial() -> None:
    store, sid = await session_of(["half an ", "answer", Fail(asm.AsmError("provider_unavailable", "down"))])
    t = await transcript(store, sid)
    assert shape(t)[-1] == ("message", "assistant", "half an answer", "partial")


def test_an_orphan_result_is_dropped_and_reported() -> None:
    datas = [RunStarted("p"), MessageSent("q"), ToolCallCompleted("ghost", "read", "?"), MessageReceived("a")]
    events = [
        asm.Event.new(d, session_id="ses", run_id="r1").with_seq(n) for n, d in enumerate([*datas, RunCompleted()], 1)
    ]
    t = build_transcript("ses", events)
    assert t.dropped == ("ghost",)
    assert [e.kind for e in t.entries] == ["message", "message"]


async def test_upto_cuts_the_log_at_a_seq() -> None:
    store, sid = await session_of(["a", MessageReceived("a")], ["b", MessageReceived("b")])
    whole = await transcript(store, sid)
    first_run_end = next(e.seq for e in (await store.read_events(sid)).events if e.type is asm.EventType.RUN_COMPLETED)
    cut = await transcript(store, sid, upto=first_run_end)
    assert cut.upto == first_run_end and len(cut.entries) == 2 and len(whole.entries) == 4


# -- the pairing invariant, for any runs cut at any event ------------------------------------


def pairs_hold(entries: tuple[Entry, ...]) -> bool:
    """Every call is answered before anything else is said; every result answers an open call."""
    open_calls: set[str] = set()
    for entry in entries:
        if entry.kind == "tool_call":
            open_calls.add(entry.tool_call_id or "")
        elif entry.kind == "tool_result":
            if entry.tool_call_id not in open_calls:
                return False
            open_calls.discard(entry.tool_call_id or "")
        elif open_calls:
            return False
    return not open_calls


def test_a_turns_text_goes_before_all_its_calls_when_one_is_answered_already() -> None:
    # Found by the property below: the turn's text came between its calls, after the answered one.
    run = [
        RunStarted("p"),
        MessageSent("q0"),
        ToolCallStarted("c3", "tool", {}),
        ToolCallStarted("c0", "tool", {}),
        ToolCallCompleted("c3", "tool", "late"),
        MessageReceived(""),
        RunCompleted(),
    ]
    events = [asm.Event.new(d, session_id="ses", run_id="r0").with_seq(n) for n, d in enumerate(run, 1)]
    t = build_transcript("ses", events)
    assert shape(t) == [
        ("message", "user", "q0", ""),
        ("message", "assistant", "", ""),
        ("call", "c3"),
        ("call", "c0"),
        ("result", "c3", ""),
        ("result", "c0", "synthetic"),
    ]
    assert pairs_hold(t.entries)


@settings(max_examples=300, deadline=None)
@given(events=cut_session_logs())
def test_any_runs_cut_at_any_event_make_a_transcript_whose_tool_pairs_hold(events: list[asm.Event]) -> None:
    t = build_transcript("ses", events)
    assert pairs_hold(t.entries), shape(t)
    assert all(e.tool_output == INTERRUPTED and e.is_error for e in t.entries if e.synthetic)
    assert len(t.repaired) == sum(e.synthetic for e in t.entries)


# -- resume: a run executed again after its worker was lost goes on from its cut attempt ----


class Recorder:
    """A provider that keeps the input it was given and answers ``done``."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[RunInput] = []

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: RunInput, emit: asm.Emit) -> asm.RunResult:
        self.seen.append(run)
        await emit(MessageReceived("and the rest"))
        return asm.RunResult("and the rest", "end_turn")


async def test_a_resumed_run_is_sent_its_cut_attempt_then_asked_to_go_on() -> None:
    store, sid = await session_of(["hi", MessageReceived("hi")])
    manager = SessionManager(store)
    run = await manager.start_run(sid, "question 1")
    # The first attempt, as a worker that then died left it: started, said half, one tool call
    # answered and one not, and no end.
    await store.save_run(attrs.evolve(run, status=asm.RunStatus.RUNNING, started_at=asm.model.utcnow()))
    for data in [
        RunStarted("scripted"),
        MessageSent("question 1"),
        MessageStreamed("half an "),
        ToolCallStarted("t1", "read", {"path": "a"}),
        ToolCallCompleted("t1", "read", "text of a"),
        ToolCallStarted("t2", "read", {"path": "b"}),
    ]:
        await manager.record_event(sid, data, run_id=run.id, provider="scripted")
    # The worker that takes it over puts it back, to go on from there.
    cut = await store.get_run(run.id)
    await store.save_run(
        attrs.evolve(
            cut, status=asm.RunStatus.PENDING, started_at=None, input=attrs.evolve(cut.input, continuation=RESUME)
        )
    )
    recorder = Recorder()

    done = await SessionManager(store).execute_run(run.id, provider=recorder)  # the worker taking it over

    (sent,) = recorder.seen
    assert [m.content for m in sent.messages] == [RESUME_PROMPT]
    assert shape(Transcript(sid, sent.history, 0)) == [
        ("message", "user", "question 0", ""),
        ("message", "assistant", "hi", ""),
        ("message", "user", "question 1", "partial"),
        ("call", "t1"),
        ("result", "t1", ""),
        ("call", "t2"),
        ("result", "t2", "synthetic"),
        ("message", "assistant", "half an ", "partial"),
    ]
    assert done.status is asm.RunStatus.COMPLETED and done.output == "and the rest"
    log = (await store.read_events(sid, run_id=run.id)).events
    assert [e.data.continuation for e in log if isinstance(e.data, RunStarted)] == [None, RESUME]
    assert [e.data.content for e in log if isinstance(e.data, MessageSent)] == ["question 1", RESUME_PROMPT]


async def test_a_resumed_run_whose_attempt_said_nothing_is_a_plain_replay() -> None:
    store, sid = await session_of(["hi", MessageReceived("hi")])
    manager = SessionManager(store)
    run = await manager.start_run(sid, "question 1")
    await store.save_run(attrs.evolve(run, input=attrs.evolve(run.input, continuation=RESUME)))
    recorder = Recorder()

    await manager.execute_run(run.id, provider=recorder)

    (sent,) = recorder.seen
    assert [m.content for m in sent.messages] == ["question 1"]
    assert [e.content for e in sent.history] == ["question 0", "hi"]


def test_resume_is_a_runs_mode_not_one_a_caller_may_ask_for() -> None:
    with pytest.raises(asm.AsmError) as caught:
        check_continuation(RESUME)
    assert caught.value.code == "validation_error"
    assert RunInput.coerce("x").__class__(messages=(), continuation=RESUME).continuation == RESUME


@settings(max_examples=200, deadline=None)
@given(events=cut_session_logs(), cuts=st.lists(st.integers(0, 60), max_size=6))
async def test_a_transcript_read_through_a_cache_is_the_one_read_whole(
    events: list[asm.Event], cuts: list[int]
) -> None:
    # The log grows in steps (a run's events land in several appends); after each, the
    # transcript read from what the cache holds is exactly the one rebuilt from every event.
    store = InMemorySessionStore()
    cache = TranscriptCache(size=4)
    done = 0
    for cut in [*sorted(cuts), len(events)]:
        if cut > done:
            await store.append_events([attrs.evolve(e, seq=None) for e in events[done:cut]])
            done = cut
        assert await transcript(store, "ses", cache=cache) == await transcript(store, "ses")


async def test_a_long_session_is_read_from_where_its_runs_had_ended() -> None:
    store, sid = await session_of(*[[f"a{i}", MessageReceived(f"a{i}")] for i in range(3)])
    cache = TranscriptCache()
    whole = await transcript(store, sid, cache=cache)
    folded = cache.get(sid)
    assert folded is not None and folded.upto == whole.upto and folded.entries == whole.entries

    class Counting(InMemorySessionStore):
        def __init__(self) -> None:
            super().__init__()
            self.read: list[int] = []

        async def read_events(self, session_id: str, **kwargs: Any) -> asm.Page:
            self.read.append(kwargs.get("after", 0))
            return await store.read_events(session_id, **kwargs)

    counting = Counting()
    assert await transcript(counting, sid, cache=cache) == whole
    assert counting.read and min(counting.read) == whole.upto  # nothing before the fold is read again


def test_a_transcript_cache_holds_its_size_of_sessions() -> None:
    cache = TranscriptCache(size=2)
    for sid in ("a", "b", "c"):
        cache.put(sid, Folded(1, ()))
    assert cache.get("a") is None and cache.get("b") is not None and cache.get("c") is not None
    with pytest.raises(AsmError) as caught:
        TranscriptCache(size=0)
    assert caught.value.code == "validation_error"
