"""asm.sse: the Server-Sent Events decoder the HTTP providers share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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
