"""The one cattrs converter every value goes through, and JSON helpers.

Events serialize as a tagged union: the envelope's ``type`` selects the payload
class of ``data``. Scalars are strict (``"1"`` is not an int, ``1`` is not a
string), so corrupt or hand-edited data fails loudly instead of drifting.

>>> from asm.events import Event, MessageStreamed
>>> event = Event.new(MessageStreamed(delta="hi"), session_id="ses_1").with_seq(1)
>>> event_from_json(event_to_json(event)) == event
True
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError

from asm.errors import AsmError
from asm.events import PAYLOADS, Event, EventType
from asm.model import to_decimal

__all__ = [
    "converter",
    "describe_structure_error",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "structure",
    "unstructure",
]

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type, *, accept: tuple[type, ...] = ()) -> Any:
    allowed = (kind, *accept)

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got bool")
        if not isinstance(value, allowed):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


converter.register_structure_hook(str, _strict(str))
converter.register_structure_hook(int, _strict(int))
converter.register_structure_hook(float, _strict(float, accept=(int,)))
converter.register_structure_hook(bool, _strict(bool))


def _structure_datetime(value: Any, _: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    return datetime.fromisoformat(value)


converter.register_unstructure_hook(datetime, lambda value: value.isoformat())
converter.register_structure_hook(datetime, _structure_datetime)
converter.register_unstructure_hook(Enum, lambda value: value.value)
# A StrEnum is a str subclass: without this, the strict str hook would hand back a plain str.
converter.register_structure_hook(StrEnum, lambda value, cls: cls(_strict(str)(value, str)))
# Money is exact: a Decimal is written as a JSON string and read back from a string or number.
converter.register_unstructure_hook(Decimal, str)
converter.register_structure_hook(Decimal, lambda value, _: to_decimal(value))


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready dict form of ``event``; ``type`` tags the payload."""
    return {
        "id": event.id,
        "type": event.data.type.value,
        "session_id": event.session_id,
        "run_id": event.run_id,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "provider": event.provider,
        "schema_version": event.schema_version,
        "data": converter.unstructure(event.data),
    }


def event_from_dict(raw: dict[str, Any]) -> Event:
    """Rebuild an event from :func:`event_to_dict` output, or raise
    ``AsmError(code="validation_error")`` naming what is wrong."""
    try:
        event_type = EventType(raw["type"])
        data = converter.structure(raw.get("data") or {}, PAYLOADS[event_type])
        seq = raw.get("seq")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
            raise TypeError("seq must be an integer")
        return Event(
            id=converter.structure(raw["id"], str),
            session_id=converter.structure(raw["session_id"], str),
            run_id=converter.structure(raw.get("run_id"), str | None),  # type: ignore[arg-type]
            data=data,
            at=_structure_datetime(raw["at"], datetime),
            seq=seq,
            provider=converter.structure(raw.get("provider"), str | None),  # type: ignore[arg-type]
            schema_version=converter.structure(raw.get("schema_version", 1), int),
        )
    except (KeyError, TypeError, ValueError, ClassValidationError) as exc:
        event_id = raw.get("id") if isinstance(raw, dict) else None
        raise AsmError(
            "validation_error",
            f"event {event_id or '<no id>'} is malformed: {describe_structure_error(exc)}",
            details={"event_id": event_id},
        ) from None


converter.register_unstructure_hook(Event, event_to_dict)
converter.register_structure_hook(Event, lambda raw, _: event_from_dict(raw))


def event_to_json(event: Event) -> str:
    """One event as compact JSON (one line, key order fixed)."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)


def event_from_json(text: str | bytes) -> Event:
    """Parse :func:`event_to_json` output; malformed JSON raises ``validation_error``."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise AsmError("validation_error", f"event JSON is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise AsmError("validation_error", "event JSON must be an object")
    return event_from_dict(raw)


def unstructure(value: Any) -> Any:
    """Any asm value as plain JSON-ready data."""
    return converter.unstructure(value)


def structure(raw: Any, cls: type[T], *, what: str = "value") -> T:
    """Build ``cls`` from plain data, or raise ``validation_error`` saying
    which key is wrong and what type it should have."""
    try:
        return converter.structure(raw, cls)
    except (ClassValidationError, IterableValidationError, TypeError, ValueError, KeyError) as exc:
        raise AsmError("validation_error", f"invalid {what}: {describe_structure_error(exc)}") from None


def describe_structure_error(exc: BaseException) -> str:
    """One line naming each bad key (as a dotted path) and why it is bad."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        return "; ".join(_describe(m) for m in cattrs.transform_error(exc, path=""))
    return str(exc)


def _describe(message: str) -> str:
    # cattrs says "expected int @ .timeout"; say "timeout: expected int".
    text, _, path = message.rpartition(" @ ")
    path = path.lstrip(".$")
    return f"{path}: {text}" if path else text
