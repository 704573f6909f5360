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

import re
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
#: 19 digits in a row: maybe an integer orjson cannot hold (floats are written with at most 17).
_LONG_NUMBER: Final = re.compile(r"[0-9]{19}")
_SCALARS: Final = (str, int, float, bool)
#: The envelope keys: id, type, session_id, run_id, seq, at, provider, schema_version, data.
_ENVELOPE_SIZE: Final = 9


class _JsonObject:
    """A ``dict[str, Any]`` field (a tool's input): any JSON object, read as orjson gives it."""


class _AnyJson:
    """An ``Any`` field (a tool's output): any JSON value, read as orjson gives it."""


class _StrTuple:
    """A ``tuple[str, ...]`` field: a JSON array of strings."""


#: Fields read fast (never written fast: the JSON inside may hold floats).
_NESTED: Final[dict[Any, type]] = {dict[str, Any]: _JsonObject, Any: _AnyJson, tuple[str, ...]: _StrTuple}


def _kinds(annotation: Any) -> tuple[type, ...] | None:
    """The Python types a scalar field may hold (or a ``_NESTED`` marker), or None if it is
    not a field read fast."""
    if annotation in _SCALARS:
        return (annotation,)
    nested = _NESTED.get(annotation)
    if nested is not None:
        return (nested,)
    if isinstance(annotation, type) and attrs.has(annotation):
        reader = _record_reader(annotation)
        return None if reader is None else (reader,)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = typing.get_args(annotation)
        if all(m in _SCALARS or m is _NONE for m in members):
            return tuple(members)
    return None


class _Record:
    """A field holding an attrs value of scalar fields (a run's ``TokenUsage``)."""

    read: Callable[[Any], Any]


def _record_reader(cls: type) -> type[_Record] | None:
    """A ``_Record`` marker whose ``read`` builds ``cls`` from its JSON object, or None
    when a field of ``cls`` is not a plain scalar."""
    hints = typing.get_type_hints(cls)
    fields = attrs.fields(cls)
    kinds = [_kinds(hints[f.name]) for f in fields]
    if any(k is None or not set(k) <= {*_SCALARS, _NONE} for k in kinds):
        return None
    _, read = _compile(cls, [f.name for f in fields], [k for k in kinds if k is not None])
    return type(f"_{cls.__name__}Record", (_Record,), {"read": staticmethod(read)})


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
    #: The payload holds free JSON (``Any``, ``dict[str, Any]``), where orjson would read
    #: an integer beyond 64 bits as a float: such text goes the slow way.
    free_json: bool = False


def _compile(cls: type[EventData], names: list[str], kinds: list[tuple[type, ...]]) -> tuple[Callable[..., Any], ...]:
    """``write`` and ``read`` for a flat payload class, as generated straight-line
    code (as attrs and cattrs do): a loop over the fields would cost more than
    the rest of writing or reading an event."""
    fields = ", ".join(f"{name!r}: p.{name}" for name in names)
    lines = ["def write(p):", f"    return {{{fields}}}"]
    lines += ["def read(data):", f"    if len(data) != {len(names)}: raise TypeError"]
    namespace_records: dict[str, Any] = {}
    for i, (name, allowed) in enumerate(zip(names, kinds, strict=True)):
        lines.append(f"    v{i} = data[{name!r}]")
        if allowed == (_AnyJson,):
            continue
        if allowed == (_JsonObject,):
            lines.append(f"    if type(v{i}) is not dict: raise TypeError")
            continue
        if len(allowed) == 1 and isinstance(allowed[0], type) and issubclass(allowed[0], _Record):
            namespace_records[f"record{i}"] = allowed[0].read
            lines.append(f"    v{i} = record{i}(v{i}) if type(v{i}) is dict else fail()")
            continue
        if allowed == (_StrTuple,):
            lines.append(f"    if type(v{i}) is not list or any(type(x) is not str for x in v{i}): raise TypeError")
            lines.append(f"    v{i} = tuple(v{i})")
            continue
        test = " and ".join(f"type(v{i}) is not {kind.__name__}" for kind in allowed if kind is not _NONE)
        if _NONE in allowed:
            test = f"v{i} is not None and {test}"
        lines.append(f"    if {test}: raise TypeError")
    lines.append(f"    return cls({', '.join(f'v{i}' for i in range(len(names)))})")
    namespace: dict[str, Any] = {"cls": cls, "fail": _fail, **namespace_records}
    exec("\n".join(lines), namespace)  # the source is built above from field names and types
    return namespace["write"], namespace["read"]


def _fail() -> Any:
    raise TypeError


def _is_record(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, _Record)


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
        nested = any(kind in _NESTED.values() or _is_record(kind) for k in found for kind in k)
        free = any(kind in (_AnyJson, _JsonObject) for k in found for kind in k)
        flat[event_type.value] = _Flat(event_type.value, nested or any(float in k for k in found), write, read, free)
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
        spec = _FLAT[raw["type"]]
        if spec.free_json and _LONG_NUMBER.search(text) is not None:
            raise TypeError  # maybe an integer beyond 64 bits (json writes no float with 19 digits in a row)
        payload = spec.read(raw["data"])
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
