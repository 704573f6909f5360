"""The event catalog and its one serialization: any event round-trips JSON unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asm import AsmError
from asm.events import PAYLOADS, Event, EventData, EventType, MessageStreamed, RouteSkip, RunFailed
from asm.model import Cost, ProviderError, TokenUsage
from asm.serde import event_from_dict, event_from_json, event_to_dict, event_to_json

# The seed library's 28 types, under the names asm uses (its tool_approval_* are approval_*).
SEED_TYPES = {
    "session_created", "session_started", "session_paused", "session_resumed", "session_completed",
    "session_failed", "session_cancelled", "run_started", "run_completed", "run_failed", "run_cancelled",
    "run_timeout", "message_sent", "message_received", "message_streamed", "tool_call_started",
    "tool_call_completed", "tool_call_failed", "error_occurred", "error_recovered", "token_usage_updated",
    "turn_completed", "workspace_snapshot_taken", "workspace_diff_computed", "policy_violation",
    "approval_requested", "approval_granted", "approval_denied",
}  # fmt: skip
ASM_ADDED = {
    "run_queued",
    "thinking_streamed",
    "cost_updated",
    "artifact_stored",
    "workspace_rolled_back",
    "run_retrying",
    "transcript_truncated",
    # routing (asm-router's decisions)
    "route_selected",
    "route_failed_over",
    "circuit_opened",
    "circuit_half_open",
    "circuit_closed",
    # storage (compaction's marker)
    "events_compacted",
}

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text() | st.floats(allow_nan=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)

counts = st.integers(min_value=0, max_value=2**40)
usages = st.builds(TokenUsage, counts, counts, counts, counts)
money = st.floats(min_value=0, max_value=1e6, allow_nan=False)
costs = st.builds(Cost, money, money, money, money, money)
provider_errors = st.builds(
    ProviderError,
    provider=st.text(),
    kind=st.text(),
    message=st.text(),
    exit_code=st.none() | st.integers(-255, 255),
    stderr=st.none() | st.text(),
    truncated=st.booleans(),
)


def _strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    by_type: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(),
        "str": st.text(),
        "str | None": st.none() | st.text(),
        "int": st.integers(-(2**53), 2**53),
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "bool": st.booleans(),
        "TokenUsage": usages,
        "Cost": costs,
        "ProviderError | None": st.none() | provider_errors,
        "dict[str, Any]": json_objects,
        "tuple[str, ...]": st.lists(st.text(), max_size=5).map(tuple),
        "tuple[RouteSkip, ...]": st.lists(st.builds(RouteSkip, st.text(), st.text(), st.text()), max_size=3).map(tuple),
        "Any": json_values,
    }
    return by_type[annotation]


def payloads() -> st.SearchStrategy[EventData]:
    choices = []
    for cls in PAYLOADS.values():
        fields = {f.name: _strategy_for(f.type) for f in attrs.fields(cls)}
        choices.append(st.builds(cls, **fields))
    return st.one_of(choices)


timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
events = st.builds(
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


def test_catalog_has_every_seed_type_and_the_four_asm_adds() -> None:
    assert {t.value for t in EventType} == SEED_TYPES | ASM_ADDED
    assert set(PAYLOADS) == set(EventType)
    for event_type, cls in PAYLOADS.items():
        assert cls.type is event_type
        assert attrs.has(cls) and cls.__attrs_attrs__ is not None


@given(events)
def test_any_event_round_trips_json_unchanged(event: Event) -> None:
    text = event_to_json(event)
    again = event_from_json(text)
    assert again == event
    assert type(again.data) is type(event.data)
    assert event_to_json(again) == text  # byte for byte


@given(events)
def test_event_dict_form_is_plain_json_tagged_by_type(event: Event) -> None:
    raw = event_to_dict(event)
    assert raw["type"] == event.type.value
    assert json.loads(json.dumps(raw)) == raw
    assert event_from_dict(raw) == event


def test_new_event_has_id_time_and_no_seq_until_stored() -> None:
    event = Event.new(MessageStreamed("hi"), session_id="ses_1", run_id="run_1", provider="echo")
    assert event.id.startswith("evt_") and len(event.id) == 36
    assert event.seq is None and event.at.tzinfo is not None
    assert event.with_seq(7).seq == 7 and event.with_seq(7).id == event.id


def test_malformed_event_json_names_the_event() -> None:
    good = event_to_dict(Event.new(RunFailed("provider_error", "boom"), session_id="s").with_seq(1))
    bad = {**good, "data": {"error_code": 5, "error_message": "boom"}}
    with pytest.raises(AsmError) as caught:
        event_from_dict(bad)
    assert caught.value.code == "validation_error"
    assert good["id"] in caught.value.message and "error_code" in caught.value.message


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda raw: raw.update(type="no_such_type"), "no_such_type"),
        (lambda raw: raw.pop("session_id"), "session_id"),
        (lambda raw: raw.update(seq="1"), "seq"),
        (lambda raw: raw["data"].update(extra=1), "extra"),
        (lambda raw: raw.update(at="yesterday"), "yesterday"),
    ],
)
def test_bad_event_fields_are_validation_errors(mutate: Any, fragment: str) -> None:
    raw = event_to_dict(Event.new(MessageStreamed("x"), session_id="s").with_seq(1))
    mutate(raw)
    with pytest.raises(AsmError) as caught:
        event_from_dict(raw)
    assert caught.value.code == "validation_error"
    assert fragment in caught.value.message


def test_invalid_json_text_is_a_validation_error() -> None:
    for text in ("{not json", "[1, 2]"):
        with pytest.raises(AsmError) as caught:
            event_from_json(text)
        assert caught.value.code == "validation_error"
