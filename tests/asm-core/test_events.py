"""The event catalog and its one serialization: any event round-trips JSON unchanged."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given

from asm import AsmError
from asm.events import PAYLOADS, Event, EventType, MessageStreamed, RunFailed
from asm.serde import event_from_dict, event_from_json, event_to_dict, event_to_json
from asm.testing import strategies

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
    "run_interrupted",
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

events = strategies.events()


def test_catalog_has_every_seed_type_and_the_ones_asm_adds() -> None:
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
    # Both are built field by field: still Events themselves, frozen, equal to the constructor's.
    stored = event.with_seq(7)
    assert type(event) is Event and type(stored) is Event
    assert stored == Event(event.id, "ses_1", "run_1", event.data, event.at, 7, "echo", event.schema_version)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stored.seq = 8  # type: ignore[misc]


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
