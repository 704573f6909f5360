"""The hot-path event JSON is byte-for-byte asm.serde's, both ways, errors included."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from asm_sqlalchemy._codec import (
    at_in_column,
    decode_event_json,
    decode_event_jsons,
    decode_page,
    decode_row,
    encode_event_body,
    encode_event_json,
)
from asm_sqlalchemy._rows import gc_paused, keep_built
from hypothesis import assume, given
from hypothesis import strategies as st

from asm import AsmError, Event
from asm.events import (
    EventType,
    MessageStreamed,
    RunCompleted,
    RunStarted,
    RunTimeout,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.model import TokenUsage
from asm.serde import event_from_json, event_to_dict, event_to_json
from asm.testing import sample_payloads, strategies


def events() -> list[Event]:
    found = [
        Event.new(data, session_id="ses_c", run_id="run_c" if i % 2 else None, provider="p" if i % 3 else None)
        for i, data in enumerate(sample_payloads())
    ]
    offset = timezone(timedelta(hours=-3, minutes=-30))
    found.append(Event("evt_tz", "ses_c", None, MessageStreamed("tz"), datetime(2024, 2, 29, 1, 2, 3, tzinfo=offset)))
    return [event.with_seq(i + 1) for i, event in enumerate(found)]


@pytest.mark.parametrize("event", events(), ids=lambda e: e.type.value)
def test_encode_and_decode_match_asm_serde(event: Event) -> None:
    text = encode_event_json(event)
    assert text == event_to_json(event)
    assert decode_event_json(text) == event_from_json(text) == event
    assert type(decode_event_json(text).data) is type(event.data)


def read_both_ways(text: str) -> tuple[object, object]:
    """(what decode_event_json gives, what asm.serde gives) for ``text``: each an event with its
    JSON (so 2 and 2.0 differ) and its payload's class, or an error's code and message."""
    results: list[object] = []
    for decode in (decode_event_json, event_from_json):
        try:
            event = decode(text)
        except AsmError as exc:
            results.append((exc.code, exc.message))
        else:
            results.append((event, event_to_json(event), type(event.data)))
    return results[0], results[1]


@given(strategies.events())
def test_any_event_reads_fast_exactly_as_asm_serde_reads_it(event: Event) -> None:
    """Whatever the payload type (flat ones on the generated path, others through the
    converter), replay builds the very event asm.serde builds, byte for byte in JSON."""
    text = event_to_json(event)
    assert encode_event_json(event) == text
    fast, slow = read_both_ways(text)
    assert fast == slow == (event, text, type(event.data))


_OPTIONAL_KEYS = st.sets(st.sampled_from(["run_id", "seq", "provider", "schema_version"]), min_size=1)


@given(strategies.events(), _OPTIONAL_KEYS)
def test_older_bodies_without_optional_keys_read_as_asm_serde_reads_them(event: Event, missing: set[str]) -> None:
    """Bodies written before the envelope had all nine keys read as they always did."""
    raw = event_to_dict(event)
    for key in missing:
        del raw[key]
    fast, slow = read_both_ways(json.dumps(raw, separators=(",", ":"), ensure_ascii=False))
    assert fast == slow
    assert not isinstance(fast[0], str)  # an event, not an error: every one of those keys may be missing


@given(strategies.events(), st.text())
def test_an_unknown_event_type_fails_as_asm_serde_fails(event: Event, name: str) -> None:
    assume(name not in {t.value for t in EventType})
    raw = event_to_dict(event)
    raw["type"] = name
    fast, slow = read_both_ways(json.dumps(raw))
    assert fast == slow
    assert fast[0] == "validation_error"


_BODY_DAMAGE = st.sampled_from([None, "truncated", "not an object", "unknown type", "int for a float", "no provider"])


def _damaged(event: Event, damage: str | None) -> str:
    text = event_to_json(event)
    raw = event_to_dict(event)
    if damage == "truncated":
        return text[: len(text) // 2]
    if damage == "not an object":
        return "[1, 2]"
    if damage == "unknown type":
        raw["type"] = "no_such_type"
    elif damage == "int for a float":
        raw["data"] = {key: int(v) if type(v) is float and v.is_integer() else v for key, v in raw["data"].items()}
    elif damage == "no provider":
        del raw["provider"]
    return json.dumps(raw)


@given(st.lists(st.tuples(strategies.events(), _BODY_DAMAGE), max_size=6))
def test_a_page_reads_as_its_events_one_by_one(page: list[tuple[Event, str | None]]) -> None:
    """Replay decodes a page at once: the same events as one at a time, or the same error (the first bad row's)."""
    texts = [_damaged(event, damage) for event, damage in page]
    try:
        expected: object = [(e, event_to_json(e)) for e in (decode_event_json(text) for text in texts)]
    except AsmError as exc:
        expected = (exc.code, exc.message)
    try:
        got: object = [(e, event_to_json(e)) for e in decode_event_jsons(texts)]
    except AsmError as exc:
        got = (exc.code, exc.message)
    assert got == expected


# Every code point, lone surrogates and control characters included.
_ANY_TEXT = st.text(st.characters(exclude_categories=()))


@given(delta=_ANY_TEXT, stream=st.none() | _ANY_TEXT, session_id=_ANY_TEXT, seq=st.integers(1, 2**70))
def test_any_text_and_numbers_encode_and_decode_as_asm_serde_does(
    delta: str, stream: str | None, session_id: str, seq: int
) -> None:
    for data in (MessageStreamed(delta, stream), ToolCallFailed("call_1", delta, stream or "?")):
        event = Event.new(data, session_id=session_id, run_id=stream, provider=stream).with_seq(seq)
        text = encode_event_json(event)
        assert text == event_to_json(event)
        assert decode_event_json(text) == event


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)


@given(tool_input=st.dictionaries(_ANY_TEXT, _JSON, max_size=3), tool_output=_JSON, tokens=st.integers(0, 2**70))
def test_tool_calls_and_usage_decode_as_asm_serde_does(
    tool_input: dict[str, object], tool_output: object, tokens: int
) -> None:
    """Tool inputs and outputs (any JSON) and a run's usage are read fast too: the same event, or serde's path."""
    for data, nested in (
        (ToolCallStarted("call_1", "read", tool_input), "tool_input"),
        (ToolCallCompleted("call_1", "read", tool_output), "tool_output"),
        (RunCompleted("end_turn", TokenUsage(tokens, 2, 0, tokens % 7)), "usage"),
        (RunStarted("p", "m", ("tools", "thinking")), "missing_capabilities"),
    ):
        text = event_to_json(Event.new(data, session_id="s", run_id="r").with_seq(1))
        slow = event_from_json(text)
        assert decode_event_json(text) == slow and decode_event_json(text).data == slow.data
        raw = json.loads(text)
        for bad in ([1], "x", None, {"input_tokens": 1.5}):  # not what the class says: fails or reads as serde's
            raw["data"][nested] = bad
            altered = json.dumps(raw)
            try:
                expected: object = event_from_json(altered)
            except AsmError as exc:
                expected = (exc.code, exc.message)
            try:
                got: object = decode_event_json(altered)
            except AsmError as exc:
                got = (exc.code, exc.message)
            assert got == expected


def test_an_int_for_a_float_field_reads_as_asm_serde_reads_it() -> None:
    raw = json.loads(event_to_json(Event.new(RunTimeout(2.0), session_id="s").with_seq(1)))
    raw["data"]["timeout_s"] = 2
    text = json.dumps(raw)
    decoded = decode_event_json(text)
    assert decoded == event_from_json(text)
    assert type(decoded.data.timeout_s) is float  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "change",
    [
        {"data": {"delta": 1}},
        {"data": {"delta": "x", "extra": 1}},
        {"data": {}},
        {"seq": "1"},
        {"id": None},
        {"at": "yesterday"},
        {"type": "no_such_type"},
        {"provider": 3},
    ],
)
def test_malformed_json_fails_as_asm_serde_fails(change: dict[str, object]) -> None:
    raw = json.loads(event_to_json(Event.new(MessageStreamed("x"), session_id="s").with_seq(1)))
    raw.update(change)
    text = json.dumps(raw)
    with pytest.raises(AsmError) as slow:
        event_from_json(text)
    with pytest.raises(AsmError) as fast:
        decode_event_json(text)
    assert (
        (fast.value.code, fast.value.message)
        == (slow.value.code, slow.value.message)
        == (
            "validation_error",
            slow.value.message,
        )
    )


def test_reading_a_page_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # an application that turned the collector off keeps it off
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_long_page_read_is_left_out_of_the_young_collections_unless_the_application_froze_objects() -> None:
    """What a long read builds and hands on goes straight to the oldest generation (a young
    collection would only walk it); an application's own frozen objects stay frozen."""
    gc.collect()
    young_collections = gc.get_count()[1]
    with gc_paused():
        page = [Event.new(MessageStreamed(str(i)), session_id="s") for i in range(5_000)]
        keep_built()
    garbage = [[] for _ in range(100)]  # far fewer than a young collection waits for, unless one is due
    assert gc.get_count()[1] == young_collections
    assert all(gc.is_tracked(event) for event in page[:10])  # a full collection still sees them
    del page, garbage
    gc.freeze()
    try:
        young_collections = gc.get_count()[1]
        with gc_paused():
            page = [Event.new(MessageStreamed(str(i)), session_id="s") for i in range(5_000)]
            keep_built()
        garbage = [[] for _ in range(100)]
        assert gc.get_count()[1] > young_collections  # the page was left young: a collection was due
        assert gc.get_freeze_count() > 0  # unfreezing would have emptied the permanent generation
        del page, garbage
    finally:
        gc.unfreeze()


# -- lean bodies (revision 0004): the columns hold the envelope, the body the rest ---------------


def _stored_row(event: Event, body: str, *, sqlite: bool | str) -> tuple[object, ...]:
    """The row the store writes for ``event`` (seq set): ``at`` naive UTC, as each driver hands
    it back: text on SQLite, a datetime on PostgreSQL (``"aware"``: in UTC, as
    ``at AT TIME ZONE 'UTC'`` reads it)."""
    naive = event.at.astimezone(UTC).replace(tzinfo=None) if event.at.tzinfo is not None else event.at
    at: object = naive.isoformat(sep=" ", timespec="microseconds") if sqlite is True else naive
    if sqlite == "aware":
        at = naive.replace(tzinfo=UTC)
    return (event.session_id, event.seq, event.id, event.run_id, event.type.value, at, event.provider,
            event.schema_version, body)  # fmt: skip


def _read(decode: Callable[[], Event]) -> object:
    try:
        event = decode()
    except AsmError as exc:
        return (exc.code, exc.message)
    return (event, event_to_json(event), type(event.data))


@given(strategies.events(), st.integers(1, 2**62), st.sampled_from([True, False, "aware"]))
def test_any_event_round_trips_a_lean_body_byte_for_byte(event: Event, seq: int, sqlite: bool | str) -> None:
    """What a lean row reads back as is the very event stored: == and the same public JSON,
    byte for byte, whether the page decoder or the row decoder reads it."""
    event = event.with_seq(seq)
    iso = event.at.isoformat()
    body = encode_event_body(event, iso)
    assert ('"at":' in body.split('"data":')[0] or body.endswith(f'"at":{json.dumps(iso)}}}')) != at_in_column(iso)
    row = _stored_row(event, body, sqlite=sqlite)
    expected = (event, event_to_json(event), type(event.data))
    assert _read(lambda: decode_row(row)) == expected
    page = decode_page(event.session_id, [row[1:]], decode_row)
    assert _read(lambda: page[0]) == expected


@given(strategies.events(), st.integers(1, 2**62))
def test_a_whole_body_in_a_row_reads_as_it_always_did(event: Event, seq: int) -> None:
    """Rows written before revision 0004 hold the whole event: both decoders still read them."""
    event = event.with_seq(seq)
    row = _stored_row(event, event_to_json(event), sqlite=True)
    expected = (event, event_to_json(event), type(event.data))
    assert _read(lambda: decode_row(row)) == expected
    assert _read(lambda: decode_page(event.session_id, [row[1:]], decode_row)[0]) == expected


_LEAN_DAMAGE = st.sampled_from([None, None, "whole", "truncated", "extra key", "no data", "int for a str", "list"])


def _lean_damaged(event: Event, damage: str | None) -> tuple[object, ...]:
    body = encode_event_body(event, event.at.isoformat())
    raw = json.loads(body)
    if damage == "whole":
        body = event_to_json(event)
    elif damage == "truncated":
        body = body[: len(body) // 2]
    elif damage == "extra key":
        body = json.dumps({**raw, "seq": 1})
    elif damage == "no data":
        body = json.dumps({"at": event.at.isoformat()})
    elif damage == "int for a str":
        body = json.dumps({**raw, "data": {key: 7 if isinstance(v, str) else v for key, v in raw["data"].items()}})
    elif damage == "list":
        body = "[]"
    return _stored_row(event, body, sqlite=True)


@given(st.lists(st.tuples(strategies.events(), _LEAN_DAMAGE), max_size=6))
def test_a_lean_page_reads_as_its_rows_one_by_one(page: list[tuple[Event, str | None]]) -> None:
    """The page decoder gives, row by row, what decode_row gives (event or error), whatever the mix of
    body forms and damage; its slow path is asked for exactly the rows it does not read itself."""
    rows = [_lean_damaged(event.with_seq(i + 1), damage) for i, (event, damage) in enumerate(page)]
    for row in rows:
        got = _read(lambda row=row: decode_page(str(row[0]), [row[1:]], decode_row)[0])
        assert got == _read(lambda row=row: decode_row(row))


def test_a_page_of_streamed_deltas_is_read_without_the_slow_path() -> None:
    """The common rows (flat payloads, times in UTC) never reach the converter, and come out
    as the very values the writer had."""
    events = [
        Event.new(MessageStreamed(f"d{i}", None), session_id="ses_p", run_id="run_p").with_seq(i + 1) for i in range(3)
    ]
    rows = [
        _stored_row(e, encode_event_body(e, e.at.isoformat()), sqlite=sqlite)[1:]
        for e, sqlite in zip(events, (True, False, "aware"), strict=True)
    ]
    slow: list[object] = []
    decoded = decode_page("ses_p", rows, slow.append)  # type: ignore[arg-type]
    assert decoded == events
    assert slow == []
    # Built field by field, then made what they are: the classes themselves, not subclasses.
    assert all(type(e) is Event and type(e.data) is MessageStreamed for e in decoded)
    assert all(json.loads(row[-1]) == {"data": {"delta": f"d{i}", "stream": None}} for i, row in enumerate(rows))
