"""Hypothesis strategies for asm's events and session logs (needs the
``asm-core[testing]`` extra).

:func:`events` draws any :class:`~asm.Event` of the catalog: every payload
type (:data:`asm.events.PAYLOADS`) with any text, free JSON in tool inputs and
outputs, usages, costs, provider errors, timestamps in and out of UTC, and any
``seq`` (or none). Property tests of anything that stores, sends or decodes
events use it::

    from hypothesis import given
    from asm.serde import event_from_json, event_to_json
    from asm.testing.strategies import events

    @given(events())
    def test_my_codec_reads_what_asm_writes(event):
        assert my_decode(event_to_json(event)) == event_from_json(event_to_json(event))

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

import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from asm.events import (
    PAYLOADS,
    Event,
    EventData,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    RouteSkip,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    ThinkingStreamed,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.model import Cost, ProviderError, TokenUsage

__all__ = ["cut_session_logs", "events", "json_objects", "json_values", "payloads"]

_SCALARS: Final = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text() | st.floats(allow_nan=False)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value (``None``, booleans, integers within 2**53, text, finite floats,
    lists and objects of those)."""
    return st.recursive(
        _SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    """Any JSON object (a tool's input)."""
    return st.dictionaries(st.text(max_size=8), json_values(), max_size=4)


def _strategies_by_type() -> dict[Any, st.SearchStrategy[Any]]:
    """A strategy for each type a payload field is declared with."""
    counts = st.integers(min_value=0, max_value=2**40)
    money = st.floats(min_value=0, max_value=1e6, allow_nan=False)
    provider_errors = st.builds(
        ProviderError,
        provider=st.text(),
        kind=st.text(),
        message=st.text(),
        exit_code=st.none() | st.integers(-255, 255),
        stderr=st.none() | st.text(),
        truncated=st.booleans(),
    )
    return {
        str: st.text(),
        str | None: st.none() | st.text(),
        int: st.integers(-(2**53), 2**53),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
        TokenUsage: st.builds(TokenUsage, counts, counts, counts, counts),
        Cost: st.builds(Cost, money, money, money, money, money),
        ProviderError | None: st.none() | provider_errors,
        dict[str, Any]: json_objects(),
        tuple[str, ...]: st.lists(st.text(), max_size=5).map(tuple),
        tuple[RouteSkip, ...]: st.lists(st.builds(RouteSkip, st.text(), st.text(), st.text()), max_size=3).map(tuple),
        Any: json_values(),
    }


def payloads() -> st.SearchStrategy[EventData]:
    """Any payload of any type in :data:`asm.events.PAYLOADS`."""
    by_type = _strategies_by_type()
    choices = []
    for cls in PAYLOADS.values():
        hints = typing.get_type_hints(cls)
        fields = {f.name: by_type[hints[f.name]] for f in attrs.fields(cls)}  # type: ignore[arg-type]
        choices.append(st.builds(cls, **fields))
    return st.one_of(choices)


def events() -> st.SearchStrategy[Event]:
    """Any event: any payload (:func:`payloads`), ids and text of any characters,
    a timestamp between 2000 and 2100 in UTC or UTC+05:30, ``seq`` none or
    up to 2**62, ``schema_version`` 1 to 9."""
    timestamps = st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
    return st.builds(
        Event,
        id=st.text(min_size=1),
        session_id=st.text(min_size=1),
        run_id=st.none() | st.text(min_size=1),
        data=payloads(),
        at=timestamps,
        seq=st.none() | st.integers(min_value=1, max_value=2**62),
        provider=st.none() | st.text(),
        schema_version=st.integers(min_value=1, max_value=9),
    )


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
