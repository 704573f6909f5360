"""Compaction and retention: the transcript survives compaction, and [retention] applies itself."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import asm
from asm import InMemorySessionStore
from asm.continuity import TRANSCRIPT_TYPES, build_transcript, transcript
from asm.events import (
    EventData,
    EventsCompacted,
    EventType,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    ThinkingStreamed,
    ToolCallCompleted,
    ToolCallStarted,
)
from asm.model import Session
from asm.rendering import CompactRenderer
from asm.retention import RetentionPolicy, count_events
from asm.runtime import open_runtime

# -- the transcript is the same before and after compaction ----------------------------------

step = st.one_of(
    st.text(max_size=3).map(lambda s: [MessageStreamed(s)]),
    st.text(max_size=3).map(lambda s: [MessageStreamed(s, "stdout")]),
    st.text(max_size=3).map(lambda s: [MessageReceived(s)]),
    st.text(max_size=3).map(lambda s: [ThinkingStreamed(s)]),
    st.integers(0, 3).map(lambda i: [ToolCallStarted(f"c{i}", "tool", {"i": i}), ToolCallCompleted(f"c{i}", "t", i)]),
)
ends = st.sampled_from([RunCompleted(), RunFailed("provider_error", "x"), RunCancelled("stop"), None])
runs = st.lists(st.tuples(st.lists(step, max_size=8), ends, st.booleans()), min_size=1, max_size=5)


async def _log(runs: list[tuple[list[list[EventData]], EventData | None, bool]]) -> tuple[InMemorySessionStore, str]:
    """The runs' events in one session; a run flagged ``True`` interleaves with the next."""
    store = InMemorySessionStore()
    await store.save_session(Session(id="ses_p", agent_id="a"))
    streams: list[list[asm.Event]] = []
    for index, (steps, end, _) in enumerate(runs):
        datas: list[EventData] = [RunStarted("p"), MessageSent(f"q{index}"), *(d for s in steps for d in s)]
        datas += [end] if end is not None else []
        streams.append([asm.Event.new(d, session_id="ses_p", run_id=f"r{index}") for d in datas])
    events: list[asm.Event] = []
    index = 0
    while index < len(streams):
        if runs[index][2] and index + 1 < len(streams):  # two runs at once: alternate their events
            a, b = streams[index], streams[index + 1]
            for pair in range(max(len(a), len(b))):
                events += a[pair : pair + 1] + b[pair : pair + 1]
            index += 2
        else:
            events += streams[index]
            index += 1
    await store.append_events(events)
    return store, "ses_p"


@settings(max_examples=200, deadline=None)
@given(runs=runs)
def test_compaction_leaves_the_transcript_as_it_was(
    runs: list[tuple[list[list[EventData]], EventData | None, bool]],
) -> None:
    async def check() -> None:
        store, sid = await _log(runs)
        before = await transcript(store, sid)
        whole = (await store.read_events(sid)).events
        assert before == build_transcript(sid, [e for e in whole if e.type in TRANSCRIPT_TYPES]), (
            "transcript() reads less than every transcript event, and gets the same"
        )
        done = await store.compact_events(sid)
        assert await transcript(store, sid) == before
        log = (await store.read_events(sid)).events
        answered = {e.run_id for e in log if e.type is EventType.MESSAGE_RECEIVED}
        ended = {e.run_id for e in log if e.type.value in ("run_completed", "run_failed", "run_cancelled")}
        assert not [e for e in log if e.type is EventType.MESSAGE_STREAMED and e.run_id in answered & ended]
        assert done.deltas == sum(e.data.count for e in log if isinstance(e.data, EventsCompacted))

    trio.run(check)


# -- [retention] as config -------------------------------------------------------------------


async def _session_runs(runtime: Any, count: int, text: str = "one two three four five") -> tuple[str, list[Any]]:
    manager = runtime.manager
    session = await manager.start_session(agent_id="a")
    await manager.activate_session(session.id)
    done = []
    for _ in range(count):
        run = await manager.start_run(session.id, text)
        done.append(await manager.execute_run(run.id))
    return session.id, done


async def test_after_days_0_compacts_a_run_as_it_ends() -> None:
    async with open_runtime(provider="echo", store="memory", retention={"after_days": 0}) as runtime:
        sid, done = await _session_runs(runtime, 2)
        log = (await runtime.store.read_events(sid)).events
        assert all(r.status is asm.RunStatus.COMPLETED for r in done)
        assert not [e for e in log if e.type is EventType.MESSAGE_STREAMED], "every delta was compacted"
        markers = [e.data for e in log if isinstance(e.data, EventsCompacted)]
        assert [m.count for m in markers] == [5, 5] and [m.run_id for m in markers] == [r.id for r in done]
        assert [m.content for m in (await transcript(runtime.store, sid)).messages] == ["one two three four five"] * 4


async def test_without_retention_deltas_stay_and_after_days_n_spares_recent_runs() -> None:
    for retention in (None, {"after_days": 3}):
        async with open_runtime(provider="echo", store="memory", retention=retention) as runtime:
            sid, _ = await _session_runs(runtime, 2)
            log = (await runtime.store.read_events(sid)).events
            assert len([e for e in log if e.type is EventType.MESSAGE_STREAMED]) == 10, retention


async def _three_runs(cap: int) -> tuple[Any, str, list[Any], int]:
    """A session's two echo runs, then a third, under ``max_session_events = cap``: the
    session's 2 events, 11 per run (start, message sent, 5 deltas, the answer, usage,
    cost, end), 7 once compacted. Returns the runtime's store, the session, the runs and
    the events held before the third."""
    async with open_runtime(provider="echo", store="memory", retention={"max_session_events": cap}) as runtime:
        manager = runtime.manager
        session = await manager.start_session(agent_id="a")
        await manager.activate_session(session.id)
        done = [await manager.execute_run((await manager.start_run(session.id, "one two three four five")).id)]
        done.append(await manager.execute_run((await manager.start_run(session.id, "one two three four five")).id))
        held = await count_events(runtime.store, session.id)
        done.append(await manager.execute_run((await manager.start_run(session.id, "again")).id))
        return runtime.store, session.id, done, held


async def test_max_session_events_compacts_first_then_refuses_a_run() -> None:
    store, sid, (first, second, third), held = await _three_runs(16)
    assert first.status is second.status is asm.RunStatus.COMPLETED
    assert held == 24, "the second run started at 13 events and took the session past the cap: a run is never cut"
    log = (await store.read_events(sid)).events
    assert len([e for e in log if isinstance(e.data, EventsCompacted)]) == 2, "the cap compacted the session first"
    assert third.status is asm.RunStatus.FAILED and third.error is not None
    assert third.error.code == "invalid_operation"
    assert "holds 16 events, at its cap of [retention] max_session_events = 16" in third.error.message
    assert not [e for e in log if e.run_id == third.id and e.type is EventType.RUN_STARTED], "no provider started"
    texts = [m.content for m in (await transcript(store, sid)).messages]
    assert texts == ["one two three four five"] * 4, "nothing accepted was dropped"


async def test_a_session_under_the_cap_once_compacted_takes_the_run() -> None:
    store, sid, runs, held = await _three_runs(20)
    assert held == 24 and [r.status for r in runs] == [asm.RunStatus.COMPLETED] * 3
    assert await count_events(store, sid) == 16 + 7, "compacted to 16, then the third run (one word: one delta)"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"after_days": -1}, "after_days must be a number of days >= 0"),
        ({"after_days": "soon"}, "after_days must be a number"),
        ({"max_session_events": 0}, "max_session_events must be a whole number >= 1"),
        ({"max_session_events": 2.5}, "max_session_events must be a whole number"),
        ({"after_day": 1}, "unknown key(s) after_day"),
    ],
)
async def test_a_bad_retention_table_is_invalid_config_at_assembly(table: dict[str, Any], words: str) -> None:
    with pytest.raises(asm.AsmError) as caught:
        async with open_runtime(provider="echo", store="memory", retention=table):
            pass
    assert caught.value.code == "invalid_config" and words in caught.value.message


def test_the_policy_says_what_it_does() -> None:
    assert RetentionPolicy.from_config(None).describe()[0].startswith("after_days: unset")
    assert "as soon as it ends" in RetentionPolicy(after_days=0).describe()[0]
    assert "more than 7 days ago" in RetentionPolicy(after_days=7).describe()[0]
    assert "refuses new runs" in RetentionPolicy(max_session_events=10).describe()[1]


async def test_the_compact_renderer_shows_a_compacted_run_by_its_answer() -> None:
    async with open_runtime(provider="echo", store="memory", retention={"after_days": 0}) as runtime:
        sid, _ = await _session_runs(runtime, 1, "hello there")
        renderer = CompactRenderer()
        text = "".join(renderer.render(e) for e in (await runtime.store.read_events(sid)).events)
    assert ">> hello there" in text and "?events_compacted" not in text, text


async def test_a_subscription_replaying_from_seq_1_across_compaction_misses_nothing() -> None:
    """asm.open_subscription reads the store a page at a time, then live events: compaction
    between its pages leaves it each event or the marker covering it, once, then the live run."""
    async with open_runtime(provider="echo", store="memory") as runtime:
        sid, _ = await _session_runs(runtime, 2)
        latest = await runtime.store.latest_seq(sid)
        seen: list[asm.Event] = []
        async with runtime.subscribe(sid, after=0, page_size=2) as events:
            for _ in range(5):  # inside the first run's deltas
                seen.append(await events.__anext__())
            assert seen[-1].type is EventType.MESSAGE_STREAMED
            done = await runtime.store.compact_events(sid)
            assert done.markers == 2
            while (seen[-1].seq or 0) < latest:
                seen.append(await events.__anext__())
            run = await runtime.manager.start_run(sid, "live one")
            await runtime.manager.execute_run(run.id)
            while seen[-1].type is not EventType.RUN_COMPLETED or seen[-1].run_id != run.id:
                seen.append(await events.__anext__())
    ids = [e.id for e in seen]
    assert len(ids) == len(set(ids)), "an event came twice"
    covered: set[int] = set()
    for event in seen:
        if isinstance(event.data, EventsCompacted):
            covered.update(range(event.data.first_seq, event.data.last_seq + 1))
        covered.add(event.seq or 0)
    assert covered == set(range(1, await runtime.store.latest_seq(sid) + 1)), "a seq was neither seen nor covered"
    assert [e.seq for e in seen] == sorted(e.seq or 0 for e in seen)
