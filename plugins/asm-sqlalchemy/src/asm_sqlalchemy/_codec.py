"""Event JSON on the hot paths (private).

Streaming is dominated by a few payload types whose fields are all scalars
(``message_streamed``, ``thinking_streamed``, ...). For those, this module
builds and reads the JSON directly with orjson (several times faster than
the standard library's ``json`` on these small objects), producing exactly
what :func:`asm.serde.event_to_json` writes and exactly the event
:func:`asm.serde.event_from_json` returns (tests hold both to it); every
other payload, and anything that does not look exactly right, goes through
asm's converter, which also produces the error for bad data.

Replay reads every event of a log, so reading is one generated function per
flat payload type that checks the JSON object's shape and builds the payload
and the :class:`asm.Event` around it field by field, as
``Event.new`` does: an attrs ``__init__`` (a frozen value's sets each field
through ``object.__setattr__``) would cost as much as the rest of the read. It
is done only for classes whose ``__init__`` does nothing else (no validator,
converter, hash cache or post-init hook); others are called.

Stored rows (schema revision 0004) keep the envelope in their columns and only
the payload in the body (:func:`encode_event_body`); :func:`decode_page` reads
a page of them the same way, each event from its columns and its payload's
JSON, and :func:`decode_row` is the reference it is held to (asm.serde's
reading of the envelope the row makes up). Whole-event bodies, written before
0004, are read as they always were.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import orjson

from asm import AsmError, Event
from asm.events import PAYLOADS, EventData, EventType
from asm.serde import event_from_dict, event_from_json, event_to_json, unstructure

__all__ = [
    "PAGE_COLUMNS",
    "PAGE_COLUMNS_PG",
    "ROW_COLUMNS",
    "at_in_column",
    "column_at",
    "decode_event_json",
    "decode_event_jsons",
    "decode_page",
    "decode_row",
    "encode_event_body",
    "encode_event_json",
]

_NONE = type(None)
#: 19 digits in a row: maybe an integer orjson cannot hold (floats are written with at most 17).
_LONG_NUMBER: Final = re.compile(r"[0-9]{19}")
_SCALARS: Final = (str, int, float, bool)
#: The envelope keys: id, type, session_id, run_id, seq, at, provider, schema_version, data.
_ENVELOPE_SIZE: Final = 9
_loads: Final = orjson.loads


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
    _, read, _ = _compile(cls, [f.name for f in fields], [k for k in kinds if k is not None])
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
    #: The event from its JSON object and its text, as ``event_from_json(text)`` reads it.
    read_event: Callable[[Any, str], Event]
    #: Whether a field holds free JSON (where orjson reads an integer beyond 64 bits as a float).
    free_json: bool


#: What an attrs ``__init__`` may do besides setting the fields (a hash cache's slot is
#: reset there too).
_INIT_HOOKS: Final = ("__attrs_pre_init__", "__attrs_post_init__", "__attrs_cached_hash__")


def _fillable(cls: type) -> type[Any] | None:
    """A subclass of ``cls`` to fill in by attribute assignment and then make a ``cls`` by
    setting its ``__class__``, when that builds what its ``__init__`` would (it only sets
    the fields, each a slot); else None.

    The subclass adds no slot and lets its fields be assigned (the interpreter specialises
    that to a slot store), whether ``cls`` is frozen or not: a third of the cost of setting
    each slot through its descriptor, a quarter of attrs' frozen ``__init__``. (It replaces
    ``__delattr__`` too: a class overriding either one gets the generic, slow setter.)"""
    if not attrs.has(cls) or any(hasattr(cls, hook) for hook in _INIT_HOOKS):
        return None
    for field in attrs.fields(cls):
        if field.validator is not None or field.converter is not None or not field.init or field.alias != field.name:
            return None
        slot = next((k.__dict__[field.name] for k in cls.__mro__ if field.name in k.__dict__), None)
        if not isinstance(slot, types.MemberDescriptorType):
            return None
    return type(
        f"_{cls.__name__}Builder",
        (cls,),
        {"__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__},
    )


def _builder(cls: type, prefix: str, values: list[str], namespace: dict[str, Any]) -> list[str]:
    """Lines that bind ``prefix`` to ``cls(*values)``, filled in field by field (:func:`_fillable`)
    where that is the same thing."""
    fillable = _fillable(cls)
    namespace[f"{prefix}_cls"] = cls
    if fillable is None:
        return [f"    {prefix} = {prefix}_cls({', '.join(values)})"]
    namespace[f"{prefix}_fillable"] = fillable
    lines = [f"    {prefix} = new({prefix}_fillable)"]
    lines += [f"    {prefix}.{field.name} = {value}" for field, value in zip(attrs.fields(cls), values, strict=True)]
    return [*lines, f"    {prefix}.__class__ = {prefix}_cls"]


#: The event around a payload ``p`` read from the JSON object ``raw``, each
#: envelope field checked to be of the type the generic path would accept as is.
_ENVELOPE_READ: Final = """\
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
"""


def _compile(cls: type[EventData], names: list[str], kinds: list[tuple[type, ...]]) -> tuple[Callable[..., Any], ...]:
    """``write``, ``read`` and ``read_event`` for a flat payload class, as generated
    straight-line code (as attrs and cattrs do): a loop over the fields would cost
    more than the rest of writing or reading an event. ``read`` builds the payload
    from its JSON object (TypeError/KeyError if it is not exactly right);
    ``read_event`` the whole event from the event's JSON object and ``text``,
    exactly as :func:`asm.serde.event_from_json` reads ``text``."""
    fields = ", ".join(f"{name!r}: p.{name}" for name in names)
    namespace: dict[str, Any] = {"new": _new_object, "fail": _fail, "parse_at": _parse_at}
    body = _read_payload_lines(names, kinds, namespace)
    values = [f"v{i}" for i in range(len(names))]
    lines = ["def write(p):", f"    return {{{fields}}}"]
    lines += ["def read(data):", *body, *_builder(cls, "p", values, namespace), "    return p"]
    if attrs.has(cls) and issubclass(cls, EventData):
        event_fields = ["ident", "session_id", "run_id", "p", "parse_at(at)", "seq", "provider", "version"]
        fast = []
        if any(kind in (_AnyJson, _JsonObject) for k in kinds for kind in k):
            # Free JSON, where orjson reads an integer beyond 64 bits as a float: maybe such an
            # integer if there are 19 digits in a row (json writes no float with so many).
            namespace["long_number"] = _LONG_NUMBER.search
            fast.append("    if long_number(text) is not None: raise TypeError")
        fast += ['    data = raw["data"]', *body, *_builder(cls, "p", values, namespace)]
        fast += [*_ENVELOPE_READ.splitlines(), *_builder(Event, "e", event_fields, namespace), "    return e"]
        # Anything but the exact shape (a missing optional key, an int for a float, NaN, a
        # bad value) is read, or refused with its error, by asm.serde.
        namespace["slow"] = event_from_json
        lines += ["def read_event(raw, text):", "  try:", *(f"  {line}" for line in fast)]
        lines += ["  except (TypeError, ValueError, KeyError, AttributeError):", "    return slow(text)"]
    exec("\n".join(lines), namespace)  # the source is built here from field names and types
    return namespace["write"], namespace["read"], namespace.get("read_event", _fail)


def _read_payload_lines(names: list[str], kinds: list[tuple[type, ...]], namespace: dict[str, Any]) -> list[str]:
    """Lines that bind ``v0``, ``v1``, ... to the fields ``names`` of the JSON object
    ``data``, each checked against its ``kinds`` (TypeError/KeyError for anything else)."""
    lines = [f"    if len(data) != {len(names)}: raise TypeError"]
    for i, (name, allowed) in enumerate(zip(names, kinds, strict=True)):
        lines.append(f"    v{i} = data[{name!r}]")
        if allowed == (_AnyJson,):
            continue
        if allowed == (_JsonObject,):
            lines.append(f"    if type(v{i}) is not dict: raise TypeError")
            continue
        if len(allowed) == 1 and isinstance(allowed[0], type) and issubclass(allowed[0], _Record):
            namespace[f"record{i}"] = allowed[0].read
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
    return lines


_new_object: Final = object.__new__
_parse_at: Final = datetime.fromisoformat


def _fail(*_: object) -> Any:
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
        write, read, read_event = _compile(cls, [f.name for f in fields], found)
        nested = any(kind in _NESTED.values() or _is_record(kind) for k in found for kind in k)
        has_floats = nested or any(float in k for k in found)
        free_json = any(kind in (_AnyJson, _JsonObject) for k in found for kind in k)
        flat[event_type.value] = _Flat(event_type.value, has_floats, write, read, read_event, free_json)
    return flat


_FLAT: Final = _flat_payloads()
_BY_CLASS: Final = {PAYLOADS[EventType(name)]: spec for name, spec in _FLAT.items()}
#: payload class -> its ``write``, for the flat payload types orjson writes as json does (no floats).
_ORJSON_WRITERS: Final = {cls: spec.write for cls, spec in _BY_CLASS.items() if not spec.has_floats}
_dumps: Final = orjson.dumps


def _read_slowly(raw: Any, text: str) -> Event:
    del raw
    return event_from_json(text)


#: type name -> ``read_event(raw, text)`` for every event type: one lookup per event read.
_READERS: Final = {
    **{event_type.value: _read_slowly for event_type in PAYLOADS},
    **{name: spec.read_event for name, spec in _FLAT.items()},
}


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
        raw = _loads(text)
        return _READERS[raw["type"]](raw, text)
    except (TypeError, ValueError, KeyError):
        # Not JSON, not an object, no known type: asm.serde says what is wrong.
        return event_from_json(text)


def decode_event_jsons(texts: Iterable[str]) -> list[Event]:
    """``[decode_event_json(text) for text in texts]``, with less work per event
    (a page of a replay); the same events, and the same error for the first bad one."""
    readers, loads = _READERS, _loads
    try:
        return [readers[(raw := loads(text))["type"]](raw, text) for text in texts]
    except (TypeError, ValueError, KeyError):
        return [decode_event_json(text) for text in texts]


# -- lean bodies (schema revision 0004) ----------------------------------------------------------
#
# A row of ``asm_events`` holds the event's envelope in its columns (session_id, seq, id, run_id,
# type, at, provider, schema_version); its body need only hold the rest: ``{"data": payload}``,
# plus ``"at"`` (the exact ISO text) when the column, naive UTC to the microsecond, cannot give
# the event's time back exactly (another timezone, a naive datetime). Bodies written before
# revision 0004 hold the whole event (``{"id": ..., ..., "data": ...}``): every reader takes both.

#: A stored event's columns as the readers here take them (``read_events`` leaves out session_id).
ROW_COLUMNS: Final = "session_id, seq, id, run_id, type, at, provider, schema_version, body"
PAGE_COLUMNS: Final = "seq, id, run_id, type, at, provider, schema_version, body"
#: PAGE_COLUMNS on PostgreSQL: ``at`` as a timestamptz, which psycopg reads (in C) as an aware
#: datetime in the session's time zone: in UTC under ``SET LOCAL TimeZone = 'UTC'``, the
#: datetime the event had (``datetime.replace(tzinfo=...)`` costs more than the rest of a row).
PAGE_COLUMNS_PG: Final = "seq, id, run_id, type, at AT TIME ZONE 'UTC', provider, schema_version, body"
#: Added to SQLite's naive UTC text for ``datetime.fromisoformat`` (a fifth of ``.replace``'s cost).
_UTC_SUFFIX: Final = "+00:00"

_UTC: Final = UTC
_fillable_event = _fillable(Event)
if _fillable_event is None:  # pragma: no cover - Event grew an __init__ that does more than set its fields
    raise ImportError("asm.Event can no longer be built through its slots; update asm_sqlalchemy._codec")
_FILLABLE_EVENT: Final[type[Any]] = _fillable_event
#: type name -> payload from its JSON object (TypeError/KeyError if not exactly right), for the
#: flat payload types whose fields hold no free JSON; others are read by asm's converter.
_PAYLOAD_READERS: Final = {name: spec.read for name, spec in _FLAT.items() if not spec.free_json}
#: The same for those with free JSON: read fast unless the body may hold an integer beyond 64 bits.
_FREE_JSON_READERS: Final = {name: spec.read for name, spec in _FLAT.items() if spec.free_json}


def at_in_column(iso: str) -> bool:
    """Whether the ``at`` column (naive UTC to the microsecond) gives back the time whose
    ``isoformat()`` is ``iso`` exactly: an aware time in UTC (``+00:00``), with or without
    microseconds."""
    return (len(iso) == 32 or len(iso) == 25) and iso.endswith("+00:00")


def column_at(value: str | datetime) -> datetime:
    """The ``at`` column as the event's time: naive UTC (SQLite's text, PostgreSQL's
    ``timestamp``) made aware; an aware one (``at AT TIME ZONE 'UTC'``) as it is."""
    if isinstance(value, str):
        return _parse_at(value + _UTC_SUFFIX)
    return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)


def encode_event_body(event: Event, iso: str, in_column: bool | None = None) -> str:
    """The lean body of ``event``: what its columns do not hold (``iso`` is
    ``event.at.isoformat()``; ``in_column`` is ``at_in_column(iso)``, if the caller knows it)."""
    if in_column is None:
        in_column = at_in_column(iso)
    write = _ORJSON_WRITERS.get(type(event.data))
    if write is not None:
        try:
            return _dumps({"data": write(event.data)} if in_column else {"data": write(event.data), "at": iso}).decode()
        except TypeError:  # a lone surrogate or an int over 64 bits: json writes those
            pass
    # json, as asm.serde writes: floats (NaN, 1e+16) and big integers read back as they were.
    body = {"data": unstructure(event.data)}
    if not in_column:
        body["at"] = iso
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_row(row: Sequence[Any]) -> Event:
    """The event stored in ``row`` (:data:`ROW_COLUMNS`), either body form, exactly as asm.serde
    reads the envelope its columns and body make up; ``validation_error`` if the body is not
    JSON of either form. (A full body is read as it is: the caller checks it is the row's.)"""
    session_id, seq, ident, run_id, type_name, at, provider, version, body = row
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise AsmError("validation_error", f"event JSON is not valid JSON: {exc}") from None
    except TypeError:
        raise AsmError("validation_error", f"event body is {type(body).__name__}, not JSON text") from None
    if not isinstance(raw, dict):
        raise AsmError("validation_error", "event JSON must be an object")
    if "id" in raw:  # the whole event, as written before revision 0004
        return decode_event_json(body)
    extra = sorted(set(raw) - {"data", "at"})
    if extra or "data" not in raw:
        raise AsmError(
            "validation_error",
            f"event {ident} has a body with keys {sorted(raw)}; expected data (and at)",
            details={"event_id": ident},
        )
    return event_from_dict(
        {
            "id": ident,
            "type": type_name,
            "session_id": session_id,
            "run_id": run_id,
            "seq": seq,
            "at": raw["at"] if "at" in raw else column_at(at),
            "provider": provider,
            "schema_version": version,
            "data": raw["data"],
        }
    )


def decode_page(session_id: str, rows: Sequence[Sequence[Any]], slow: Callable[[Sequence[Any]], Event]) -> list[Event]:
    """The events of one session's rows (:data:`PAGE_COLUMNS`), as :func:`decode_row` reads
    them: lean bodies of flat payload types built here straight from their slots (the
    writer validated them; the payload's JSON is still checked field by field), anything
    else by ``slow(row)`` (the row with its session id first), which also raises the error
    for a bad one."""
    readers, free, loads, parse = _PAYLOAD_READERS, _FREE_JSON_READERS, _loads, _parse_at
    new, utc, suffix, long_number = _new_object, _UTC, _UTC_SUFFIX, _LONG_NUMBER.search
    fillable, event_class = _FILLABLE_EVENT, Event
    events: list[Event] = []
    append = events.append
    last_at: Any = None
    when: Any = None
    for row in rows:
        seq, ident, run_id, type_name, at, provider, version, body = row
        try:
            raw = loads(body)
            read = readers.get(type_name)
            if read is None:
                read = free[type_name]
                if long_number(body) is not None:
                    raise TypeError
            if len(raw) != 1:
                raise TypeError  # an "at" of its own, or a whole event (before revision 0004)
            payload = read(raw["data"])
        except (TypeError, ValueError, KeyError, AttributeError):
            append(slow((session_id, *row)))
            continue
        if type(at) is not str:  # PostgreSQL's: aware already (PAGE_COLUMNS_PG)
            when = at if at.tzinfo is not None else at.replace(tzinfo=utc)
        elif at != last_at:  # events of one batch may share their time
            when = parse(at + suffix)
            last_at = at
        event = new(fillable)
        event.id = ident
        event.session_id = session_id
        event.run_id = run_id
        event.data = payload
        event.at = when
        event.seq = seq
        event.provider = provider
        event.schema_version = version
        event.__class__ = event_class
        append(event)
    return events
