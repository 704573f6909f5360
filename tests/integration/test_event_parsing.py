"""With the HTTP provider plugins installed (they depend on orjson), streamed
event data is read by orjson, and reads as ``json.loads`` reads it."""

from __future__ import annotations

import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from asm import sse
from asm.sse import loads_event

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()  # NaN and infinities too, which json writes and orjson refuses to read
    | st.text(st.characters(blacklist_categories=[])),  # lone surrogates too
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def test_orjson_reads_event_data_when_installed() -> None:
    assert sse._fast_loads is orjson.loads


@given(_JSON_VALUES)
def test_event_data_is_read_as_json_loads_reads_it(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert json.dumps(loads_event(text)) == json.dumps(json.loads(text))


def test_an_integer_beyond_64_bits_in_event_data_reads_as_a_float() -> None:
    assert loads_event("18446744073709551616") == 2.0**64  # as orjson reads it (documented)
