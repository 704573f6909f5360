"""Hypothesis strategies for session logs (needs the ``asm-core[testing]`` extra).

A provider's wire, a transcript builder, a renderer: whatever reads a session's
events must cope with runs that ended any way, or were cut off at any event.
:func:`cut_session_logs` draws such logs::

    from hypothesis import given
    from asm.continuity import build_transcript
    from asm.testing.strategies import cut_session_logs

    @given(events=cut_session_logs())
    def test_my_wire_accepts_any_history(events):
        history = build_transcript("ses", events).entries
        assert my_request(history)["messages"]
"""

from __future__ import annotations

from hypothesis import strategies as st

from asm.events import (
    Event,
    EventData,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    ThinkingStreamed,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)

__all__ = ["cut_session_logs"]


def _call(call_id: str, tool: str, i: int, done: int) -> list[EventData]:
    started = ToolCallStarted(call_id, tool, {"location": str(i)})
    endings: list[list[EventData]] = [
        [],
        [ToolCallCompleted(call_id, tool, {"t": i})],
        [ToolCallFailed(call_id, tool, "no")],
    ]
    return [started, *endings[done]]


@st.composite
def cut_session_logs(
    draw: st.DrawFn,
    *,
    tool_name: str = "tool",
    call_id: str = "c{}",
    session_id: str = "ses",
    max_runs: int = 4,
) -> list[Event]:
    """The stored events (seqs from 1) of 1 to ``max_runs`` runs, each a prompt then any
    mix of streamed and received text, thinking, tool calls (answered, failed, or never
    answered) and late results of calls that may not exist, ended as completed, failed,
    cancelled or not at all; then cut after any event.

    ``call_id`` is a format for the calls' ids (``"call:{}"`` for ids a wire must
    rewrite); calls are named ``tool_name``.
    """
    step = st.one_of(
        st.text(max_size=3).map(lambda s: [MessageStreamed(s)]),
        st.text(max_size=3).map(lambda s: [MessageReceived(s)]),
        st.text(max_size=3).map(lambda s: [ThinkingStreamed(s)]),
        st.tuples(st.integers(0, 5), st.integers(0, 2)).map(
            lambda a: _call(call_id.format(a[0]), tool_name, a[0], a[1])
        ),
        st.integers(0, 5).map(lambda i: [ToolCallCompleted(call_id.format(i), tool_name, "late")]),
    )
    ends = st.sampled_from([RunCompleted(), RunFailed("provider_error", "x"), RunCancelled("stop"), None])
    runs = draw(st.lists(st.tuples(st.lists(step, max_size=6), ends), min_size=1, max_size=max_runs))
    events: list[Event] = []
    for index, (steps, end) in enumerate(runs):
        datas: list[EventData] = [RunStarted("p"), MessageSent(f"q{index}"), *(d for s in steps for d in s)]
        datas += [end] if end is not None else []
        events += [
            Event.new(d, session_id=session_id, run_id=f"r{index}").with_seq(len(events) + n + 1)
            for n, d in enumerate(datas)
        ]
    cut = draw(st.integers(0, 60))
    return events[: max(1, len(events) - cut)]
