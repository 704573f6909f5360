"""One rule for text that is not valid Unicode: what asm records has each lone
surrogate replaced by U+FFFD.

Python carries bytes that are not UTF-8 as lone surrogates (``surrogateescape``:
``asm run $'bad \\xff'`` arrives as ``'bad \\udcff'``), and a JSON ``"\\ud800"``
escape from a provider decodes to one too. No UTF-8 database can store them. So
the manager records prompts, options, tool inputs and provider output with each
one replaced by ``\\ufffd`` (the replacement character, as ``errors="replace"``
decoding gives); the provider still gets the input as given, and nothing is
refused.

>>> scrub("bad \\udcff\\udcfe")
'bad \\ufffd\\ufffd'
>>> scrub({"ok": ["fine"]}) == {"ok": ["fine"]}
True
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import attrs

__all__ = ["scrub"]

T = TypeVar("T")

_LONE: Final = re.compile("[\ud800-\udfff]")
REPLACEMENT: Final = "\ufffd"


def scrub(value: T) -> T:
    """``value`` with every lone surrogate in its text replaced by U+FFFD: strings,
    and those inside dicts (keys too), lists, tuples and attrs instances. The same
    object comes back when there is nothing to replace (the common case, cheap:
    it runs on every event a run records)."""
    return _scrub(value)  # type: ignore[no-any-return]


# Per class: the (attribute, init argument) pairs of an attrs class, None for other classes.
_PLANS: dict[type, tuple[tuple[str, str], ...] | None] = {}
_PLAIN: Final = frozenset({int, float, bool, type(None)})


def _plan(kind: type) -> tuple[tuple[str, str], ...] | None:
    plan = None
    if attrs.has(kind):
        plan = tuple((f.name, f.alias or f.name) for f in attrs.fields(kind) if f.init)
    _PLANS[kind] = plan
    return plan


def _scrub(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        if value.isascii() or _LONE.search(value) is None:
            return value
        return _LONE.sub(REPLACEMENT, value)
    if kind in _PLAIN:
        return value
    plan = _PLANS[kind] if kind in _PLANS else _plan(kind)
    if plan is not None:
        changes: dict[str, Any] | None = None
        for name, alias in plan:
            old = getattr(value, name)
            field_kind = type(old)
            if field_kind is str:  # inlined: the common case, on every event
                if old.isascii() or _LONE.search(old) is None:
                    continue
                new = _LONE.sub(REPLACEMENT, old)
            elif field_kind in _PLAIN:
                continue
            else:
                new = _scrub(old)
                if new is old:
                    continue
            if changes is None:
                changes = {}
            changes[alias] = new
        return value if changes is None else attrs.evolve(value, **changes)
    if kind is dict:
        items = [(_scrub(k), _scrub(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if kind is list or kind is tuple:
        scrubbed = [_scrub(item) for item in value]
        if all(new is old for new, old in zip(scrubbed, value, strict=True)):
            return value
        return kind(scrubbed)
    return value
