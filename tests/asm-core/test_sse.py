"""asm.sse: the Server-Sent Events decoder and the HTTP failure classification the HTTP providers share."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asm.events import ProviderError
from asm.sse import SSEDecoder

STREAM = (
    b'event: message_start\ndata: {"a": 1}\n\n'
    b': a comment\r\nevent: delta\r\ndata: {"text": "h\xc3\xa9llo"}\r\n\r\n'
    b"data: line one\ndata: line two\n\n"
    b'event: cut\ndata: {"never": true}\n'  # no blank line: cut off, never returned
)
EXPECTED = [("message_start", '{"a": 1}'), ("delta", '{"text": "héllo"}'), ("", "line one\nline two")]


def test_events_are_decoded_and_a_cut_off_event_is_dropped() -> None:
    assert SSEDecoder().feed(STREAM) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    decoder = SSEDecoder()
    events = []
    start = 0
    for cut in [*sorted(cuts), len(STREAM)]:
        events += decoder.feed(STREAM[start:cut])
        start = cut
    assert events == EXPECTED


def test_retry_after_reads_milliseconds_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from asm.sse import retry_after_seconds

    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "12"}) == 12.0
    later = retry_after_seconds({"retry-after": format_datetime(datetime.now(UTC) + timedelta(seconds=30))})
    assert later is not None and 0 < later <= 30
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("status", "quota", "code", "retryable", "fix"),
    [
        (429, False, "provider_rate_limited", True, "retry after 7s"),
        (529, False, "provider_unavailable", True, "retry after 7s"),
        (500, False, "provider_unavailable", True, "retry after 7s"),
        (408, False, "provider_unavailable", True, "retry after 7s"),
        (401, False, "provider_authentication_failed", False, "set ANY_API_KEY"),
        (403, False, "provider_authentication_failed", False, "check the API key"),
        (429, True, "provider_quota_exceeded", False, "check the account's plan, billing and credit"),
        (400, False, "provider_error", False, "fix the request"),
    ],
)
def test_http_failures_are_classified_the_same_for_every_provider(
    status: int, quota: bool, code: str, retryable: bool, fix: str
) -> None:
    from asm.sse import http_status_failure

    headers = {"retry-after": "7"}
    error = http_status_failure(
        "any",
        "the Any API",
        status,
        "some_kind",
        "it broke",
        headers,
        request_id="req_1",
        fixes={401: "set ANY_API_KEY"},
        quota=quota,
    )
    assert (error.code, error.retryable) == (code, retryable)
    assert error.message == f"the Any API answered {status} (some_kind): it broke; {fix}"
    assert error.details["status"] == status and error.details["request_id"] == "req_1"
    assert error.details["retry_after"] == 7.0
    assert error.details["provider_error"] == ProviderError("any", "some_kind", error.message)


def test_a_retryable_failure_without_retry_after_says_retry_later() -> None:
    from asm.sse import http_status_failure

    error = http_status_failure("any", "the Any API", 503, "overloaded", "busy", {})
    assert error.message.endswith("; retry later") and "retry_after" not in error.details


@pytest.mark.parametrize("data", ["", "{", '{"a": 1,}', "[1, 2", "nul", '{"a": 1} x', b"\xff\xfe"])
def test_malformed_event_data_is_a_value_error(data: str | bytes) -> None:
    from asm.sse import loads_event

    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(ValueError):
        loads_event(data)
