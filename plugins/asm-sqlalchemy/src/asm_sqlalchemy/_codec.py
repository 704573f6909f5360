"""Event JSON on the hot paths (private).

Streaming is dominated by a few payload types whose fields are all scalars
(``message_streamed``, ``thinking_streamed``, ...). For those, this module
builds and reads the JSON directly with orjson (several times faster than
the standard library's ``json`` on these small objects), producing exactly
what :func:`asm.serde.event_to_json` writes and exactly the event
:func:`asm.serde.event_from_json` returns (tests hold both to it); every
other payload, and anything that does not look exactly right, goes through
asm's converter, which also produces the error for bad data.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import attrs
import orjson

from asm import Event
from asm.events import PAYLOADS, EventData, EventType
from asm.serde import event_from_json, event_to_json

__all__ = ["decode_event_json", "encode_event_json"]

_NONE = type(None)
_SCALARS: Final = (str, int, float, bool)
#: The envelope keys: id, type, session_id, run_id, seq, at, provider, schema_version, data.
_ENVELOPE_SIZE: Final = 9


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
    type_name: str
    #: orjson writes floats differently from ``json`` (``1e16`` vs ``1e+16``, NaN as null).
    has_floats: bool
    #: The payload's fields as a dict, in field order.
    write: Callable[[Any], dict[str, Any]]
    #: The payload from its JSON object in the exact shape encode_event_json writes
    #: (every field, each of its declared type); TypeError/KeyError for anything else.
    read: Callable[[Any], EventData]


def _compile(cls: type[EventData], names: list[str], kinds: list[tuple[type, ...]]) -> tuple[Callable[..., Any], ...]:
    """``write`` and ``read`` for a flat payload class, as generated straight-line
    code (as attrs and cattrs do): a loop over the fields would cost more than
    the rest of writing or reading an event."""
    fields = ", ".join(f"{name!r}: p.{name}" for name in names)
    lines = ["def write(p):", f"    return {{{fields}}}"]
    lines += ["def read(data):", f"    if len(data) != {len(names)}: raise TypeError"]
    for i, (name, allowed) in enumerate(zip(names, kinds, strict=True)):
        test = " and ".join(f"type(v{i}) is not {kind.__name__}" for kind in allowed if kind is not _NONE)
        if _NONE in allowed:
            test = f"v{i} is not None and {test}"
        lines += [f"    v{i} = data[{name!r}]", f"    if {test}: raise TypeError"]
    lines.append(f"    return cls({', '.join(f'v{i}' for i in range(len(names)))})")
    namespace: dict[str, Any] = {"cls": cls}
    exec("\n".join(lines), namespace)  # the source is built above from field names and types
    return namespace["write"], namespace["read"]


def _flat_payloads() -> dict[str, _Flat]:
    flat: dict[str, _Flat] = {}
    for event_type, cls in PAYLOADS.items():
        hints = typing.get_type_hints(cls)
        fields = attrs.fields(cls)  # type: ignore[arg-type]  # every payload class is an attrs class
        kinds = [_kinds(hints[f.name]) for f in fields]
        if any(k is None for k in kinds):
            continue
        found = [k for k in kinds if k is not None]
        write, read = _compile(cls, [f.name for f in fields], found)
        flat[event_type.value] = _Flat(event_type.value, any(float in k for k in found), write, read)
    return flat


_FLAT: Final = _flat_payloads()
_BY_CLASS: Final = {PAYLOADS[EventType(name)]: spec for name, spec in _FLAT.items()}


def encode_event_json(event: Event, at: str | None = None) -> str:
    """``event_to_json(event)``, faster for flat payloads; ``at`` is
    ``event.at.isoformat()`` if the caller has made it already."""
    spec = _BY_CLASS.get(type(event.data))
    if spec is None or spec.has_floats:
        return event_to_json(event)
    data = event.data
    envelope = {
        "id": event.id,
        "type": spec.type_name,
        "session_id": event.session_id,
        "run_id": event.run_id,
        "seq": event.seq,
        "at": event.at.isoformat() if at is None else at,
        "provider": event.provider,
        "schema_version": event.schema_version,
        "data": spec.write(data),
    }
    try:
        return orjson.dumps(envelope).decode()
    except TypeError:  # a lone surrogate or an int over 64 bits: json writes those
        return event_to_json(event)


def decode_event_json(text: str) -> Event:
    """``event_from_json(text)``, faster for flat payloads (same result, same errors).

    The fast path takes only JSON in the exact shape :func:`encode_event_json`
    writes (every envelope key and every field, each of its declared type);
    anything else is read, or refused with its error, by asm.serde.
    """
    try:
        raw = orjson.loads(text)
        if len(raw) != _ENVELOPE_SIZE:  # nine keys, all read below: exactly the envelope
            raise TypeError
        payload = _FLAT[raw["type"]].read(raw["data"])
        ident, session_id, at, seq, version = raw["id"], raw["session_id"], raw["at"], raw["seq"], raw["schema_version"]
        run_id, provider = raw["run_id"], raw["provider"]
        if (
            type(ident) is not str
            or type(session_id) is not str
            or type(at) is not str
            or (run_id is not None and type(run_id) is not str)
            or (provider is not None and type(provider) is not str)
            or (seq is not None and type(seq) is not int)
            or type(version) is not int
        ):
            raise TypeError
        return Event(ident, session_id, run_id, payload, datetime.fromisoformat(at), seq, provider, version)
    except (TypeError, ValueError, KeyError, AttributeError):
        # Not the canonical shape (NaN, a huge int, an int for a float, a missing
        # optional key) or not valid at all: asm.serde reads it or says what is wrong.
        return event_from_json(text)
