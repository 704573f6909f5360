"""Event JSON on the hot paths (private).

Streaming is dominated by a few payload types whose fields are all scalars
(``message_streamed``, ``thinking_streamed``, ...). For those, this module
builds and reads the JSON directly, producing exactly what
:func:`asm.serde.event_to_json` writes and exactly the event
:func:`asm.serde.event_from_json` returns (a test holds both to it); every
other payload, and anything that does not look exactly right, goes through
asm's converter, which also produces the error for bad data.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import attrs

from asm import Event
from asm.events import PAYLOADS, SCHEMA_VERSION, EventData
from asm.serde import event_from_json, event_to_json

__all__ = ["decode_event_json", "encode_event_json"]

_NONE = type(None)
_SCALARS: Final = (str, int, float, bool)
#: json.dumps(..., separators=(",", ":"), ensure_ascii=False) without building an encoder per call.
_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DECODE: Final = json.JSONDecoder().decode
_ENVELOPE: Final = frozenset({"id", "type", "session_id", "run_id", "seq", "at", "provider", "schema_version", "data"})


def _kinds(annotation: Any) -> tuple[type, ...] | None:
    """The Python types a scalar field may hold, or None if it is not a flat scalar field."""
    if annotation in _SCALARS:
        return (annotation,)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = typing.get_args(annotation)
        if all(m in _SCALARS or m is _NONE for m in members):
            return tuple(members)
    return None


@attrs.frozen
class _Flat:
    cls: type[EventData]
    names: tuple[str, ...]
    kinds: tuple[tuple[type, ...], ...]
    required: frozenset[str]
    allowed: frozenset[str]


def _flat_payloads() -> dict[str, _Flat]:
    flat: dict[str, _Flat] = {}
    for event_type, cls in PAYLOADS.items():
        hints = typing.get_type_hints(cls)
        fields = attrs.fields(cls)  # type: ignore[arg-type]  # every payload class is an attrs class
        kinds = [_kinds(hints[f.name]) for f in fields]
        if any(k is None for k in kinds):
            continue
        flat[event_type.value] = _Flat(
            cls,
            tuple(f.name for f in fields),
            tuple(k for k in kinds if k is not None),
            frozenset(f.name for f in fields if f.default is attrs.NOTHING),
            frozenset(f.name for f in fields),
        )
    return flat


_FLAT: Final = _flat_payloads()
_BY_CLASS: Final = {spec.cls: spec for spec in _FLAT.values()}


def encode_event_json(event: Event) -> str:
    """``event_to_json(event)``, faster for flat payloads."""
    spec = _BY_CLASS.get(type(event.data))
    if spec is None:
        return event_to_json(event)
    data = event.data
    return _ENCODE(
        {
            "id": event.id,
            "type": data.type.value,
            "session_id": event.session_id,
            "run_id": event.run_id,
            "seq": event.seq,
            "at": event.at.isoformat(),
            "provider": event.provider,
            "schema_version": event.schema_version,
            "data": {name: getattr(data, name) for name in spec.names},
        }
    )


def _coerce(value: Any, kinds: tuple[type, ...]) -> Any:
    """``value`` as asm.serde structures it for a field of ``kinds`` (an int for
    a float field becomes a float); TypeError for anything else."""
    if type(value) is int and float in kinds:
        return float(value)
    raise TypeError


def _optional_str(value: Any) -> bool:
    return value is None or type(value) is str


def decode_event_json(text: str) -> Event:
    """``event_from_json(text)``, faster for flat payloads (same result, same errors)."""
    slow: Callable[[str], Event] = event_from_json
    try:
        raw = _DECODE(text)
    except ValueError:
        return slow(text)
    if type(raw) is not dict:
        return slow(text)
    spec = _FLAT.get(raw.get("type"))  # type: ignore[arg-type]
    data = raw.get("data")
    if spec is None or type(data) is not dict or not raw.keys() <= _ENVELOPE or not data.keys() <= spec.allowed:
        return slow(text)
    try:
        if not spec.required <= data.keys():
            raise TypeError
        values = {}
        for name, kinds in zip(spec.names, spec.kinds, strict=True):
            if name in data:
                value = data[name]
                values[name] = value if type(value) in kinds else _coerce(value, kinds)
        ident, session_id, seq = raw["id"], raw["session_id"], raw.get("seq")
        run_id, provider = raw.get("run_id"), raw.get("provider")
        version = raw.get("schema_version", SCHEMA_VERSION)
        if type(ident) is not str or type(session_id) is not str or type(raw["at"]) is not str:
            raise TypeError
        if not (_optional_str(run_id) and _optional_str(provider)):
            raise TypeError
        if (seq is not None and type(seq) is not int) or type(version) is not int:
            raise TypeError
        return Event(
            ident, session_id, run_id, spec.cls(**values), datetime.fromisoformat(raw["at"]), seq, provider, version
        )
    except (TypeError, ValueError, KeyError):
        return slow(text)
