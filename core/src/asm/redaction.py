"""Secrets redaction: an ``asm_transform_event`` plugin that scrubs every event
before it is stored, delivered or rendered.

It walks the whole payload — message text, streamed deltas, tool inputs and
outputs, error messages and ``provider_error.stderr`` — and replaces each
secret with ``[REDACTED:<kind>]``; through ``asm_transform_record`` it does the
same to every session and run before they are saved (a run's input, result
and error). A runtime installs it unless the config says
``redact = false``; extra patterns come from ``[redact_patterns]``::

    redact_patterns = { ticket = "TICKET-[0-9]{6}" }

Used directly::

    registry = asm.load_plugins(extra=[EventRedactor()])
    manager = SessionManager(store, provider=..., plugins=registry)

Streamed text (``message_streamed``, ``thinking_streamed``) is redacted as one
text per run and stream, not delta by delta: the tail of a delta that could
still be the start of a secret (``sk-an``, ``password=hun``, a PEM block
without its END line yet) is held back and released, redacted, as soon as a
later delta shows what it is, or when the run's next other event (its
``message_received``, a tool call, its terminal event) ends the stream. A
delta held back whole is dropped; its text comes with the next one.

Every default pattern runs in linear time, and a payload of more than
:data:`OFF_LOOP_CHARS` characters is redacted in a worker thread, so a large
tool output does not stall the other runs of the process.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Final

import attrs
import trio

from asm._secret_patterns import DEFAULTS, GENERIC_HOLD, SecretPattern, hold_regex, quick_regex, words
from asm.errors import AsmError
from asm.events import RUN_END_TYPES, Event, EventType, MessageStreamed, ThinkingStreamed
from asm.hookspecs import hookimpl
from asm.model import Run, Session

__all__ = ["DEFAULT_PATTERNS", "OFF_LOOP_CHARS", "EventRedactor", "mask_url"]

#: kind -> pattern. Where a pattern has a group, only the group is replaced
#: (a URL keeps its user and host, losing only the password).
DEFAULT_PATTERNS: Final[dict[str, str]] = {p.kind: p.pattern for p in DEFAULTS}

#: A payload with more characters of text than this is redacted in a worker thread.
OFF_LOOP_CHARS: Final = 64 * 1024

#: The longest streamed tail held back: a longer possible secret is released
#: (still redacted as far as the text so far shows one).
MAX_HOLD_CHARS: Final = 16 * 1024

# Text before the part being redacted that is searched with it: the released
# streamed text kept for the next delta (never emitted again). The holds keep
# a secret's start (a key, ``Bearer``, a URL's user) with its unfinished rest,
# so this is for the look-behinds at a token's start, and for a literal every
# match contains (the longest is 20 characters) that straddles the two.
_CONTEXT_CHARS: Final = 24

_STREAMED: Final = (MessageStreamed, ThinkingStreamed)

Transformed = Event | list[Event] | None


def mask_url(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``, for
    anything asm shows (errors, logs, ``asm config show``).

    >>> mask_url("redis://:hunter2@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> mask_url("postgresql+psycopg://app:pw@db/asm")
    'postgresql+psycopg://app:***@db/asm'
    >>> mask_url("sqlite:///asm.db")
    'sqlite:///asm.db'
    """
    return _URL_PASSWORD.sub(lambda m: m.group(0)[: m.start(1) - m.start()] + "***@", url)


_URL_PASSWORD: Final = re.compile(DEFAULT_PATTERNS["url_password"])


@attrs.frozen
class _Rule:
    kind: str
    pattern: re.Pattern[str]


def _compile(kind: str, pattern: str) -> _Rule:
    try:
        return _Rule(kind, re.compile(pattern))
    except re.error as exc:
        raise AsmError(
            "invalid_config",
            f"redact_patterns.{kind}: {pattern!r} is not a valid regular expression ({exc}); fix the pattern",
            details={"key": f"redact_patterns.{kind}"},
        ) from None


class EventRedactor:
    """Replaces secrets in every event with ``[REDACTED:<kind>]``.

    >>> redactor = EventRedactor()
    >>> redactor.redact_text("key=sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaa")
    'key=[REDACTED:anthropic_key]'
    """

    def __init__(self, extra_patterns: Mapping[str, str] | None = None, *, defaults: bool = True) -> None:
        known: list[SecretPattern] = list(DEFAULTS) if defaults else []
        for kind, pattern in (extra_patterns or {}).items():
            _compile(kind, pattern)  # the error names the key
            known = [p for p in known if p.kind != kind]  # a config pattern replaces the default of its kind
            known.append(SecretPattern(kind, pattern))
        self._rules = [_compile(p.kind, p.pattern) for p in known]
        self._needs = [p.needs for p in known]
        # Most text holds no secret: the hot path is one search for the literals
        # every match contains (in lower-cased text), then only the kinds found.
        by_anchor: dict[str, set[int]] = {}
        self._unanchored = frozenset(i for i, secret in enumerate(known) if not secret.anchors)
        for index, secret in enumerate(known):
            for anchor in secret.anchors:
                by_anchor.setdefault(anchor, set()).add(index)
        # The search reports the longest literal starting at each position: one
        # found also stands for those that are its prefixes (sk-ant- for sk-).
        self._by_anchor = {
            found: frozenset().union(*(kinds for other, kinds in by_anchor.items() if found.startswith(other)))
            for found in by_anchor
        }
        self._anchors = re.compile(f"(?=({words(*by_anchor) or '(?!)'}))")
        # Patterns from config get the generic hold: asm knows nothing of how they start.
        self._hold = re.compile(hold_regex(known, [GENERIC_HOLD] if extra_patterns else []))
        # Patterns from config have no literal to look for: then every delta gets the closer look.
        self._quick = re.compile(quick_regex(known) if not self._unanchored else "")
        # run id -> (event type, stream tag) -> the stream's held tail
        self._runs: dict[str, dict[tuple[EventType, str | None], _Stream]] = {}

    # -- text ------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        return self._redact_from(text, 0)

    def _redact_from(self, text: str, start: int) -> str:
        """``text[start:]`` redacted, ``text[:start]`` serving only as left context
        (searched from ``_CONTEXT_CHARS`` before ``start``)."""
        lookback = start - _CONTEXT_CHARS if start > _CONTEXT_CHARS else 0
        # Literals are looked for where one may overlap text[start:] (the longest has 20 characters).
        found = self._anchors.findall((text[start - 19 :] if start > 19 else text).lower())
        if not found and not self._unanchored:
            return text[start:]  # the hot path: no literal any secret contains
        spans = self._spans(text, start, lookback, found)
        if not spans:
            return text[start:]
        out: list[str] = []
        at = start
        for begin, end, kind in spans:
            out.append(text[at:begin])
            out.append(f"[REDACTED:{kind}]")
            at = end
        out.append(text[at:])
        return "".join(out)

    def _spans(self, text: str, start: int, lookback: int, anchors: list[str]) -> list[tuple[int, int, str]]:
        """The secrets' spans in ``text`` that reach past ``start`` (cut to begin
        there), merged where they overlap, in order; matches are looked for from
        ``lookback``, by the rules of the ``anchors`` found there."""
        candidates = sorted(self._unanchored.union(*(self._by_anchor[anchor] for anchor in set(anchors))))
        found: list[tuple[int, int, int]] = []
        for index in candidates:
            needs = self._needs[index]
            if needs and not any(char in text for char in needs):
                continue  # a key with no = or : after it, a URL with no @
            pattern = self._rules[index].pattern
            for match in pattern.finditer(text, lookback):
                if pattern.groups and match.group(1) is not None:
                    begin, end = match.span(1)
                else:
                    begin, end = match.span()
                if end > start and end > begin:
                    found.append((max(begin, start), end, index))
        found.sort(key=lambda span: (span[0], span[2]))  # where two begin together, the first kind wins
        merged: list[tuple[int, int, str]] = []
        for begin, end, index in found:
            if merged and begin < merged[-1][1]:
                last = merged[-1]
                merged[-1] = (last[0], max(last[1], end), last[2])
            else:
                merged.append((begin, end, self._rules[index].kind))
        return merged

    # -- events ----------------------------------------------------------------

    @hookimpl
    def asm_transform_event(self, event: Event) -> Transformed | Awaitable[Transformed]:
        """The event with its payload scrubbed, or ``None`` when it holds no
        secret; streamed text is held back and released as described above
        (a list: the released text, then the event, if any of it is left). An
        awaitable when the payload is large (redacted in a worker thread)."""
        data = event.data
        run_id = event.run_id
        if run_id is not None and type(data) in _STREAMED:
            return self._stream(event, run_id)
        released = self._release(event, run_id) if run_id is not None else []
        if _text_size(data) > OFF_LOOP_CHARS:
            return self._off_loop(released, event)
        cleaned = self._redact(data)
        if not released:
            return None if cleaned is data else attrs.evolve(event, data=cleaned)
        return [*released, event if cleaned is data else attrs.evolve(event, data=cleaned)]

    async def _off_loop(self, released: list[Event], event: Event) -> list[Event]:
        cleaned = await trio.to_thread.run_sync(self._redact, event.data)
        return [*released, attrs.evolve(event, data=cleaned)]

    def _stream(self, event: Event, run_id: str) -> Transformed | Awaitable[Transformed]:
        # The hot path: every delta of every run comes here, so it is kept to a few
        # steps for the usual delta (nothing held, nothing to hold, no literal).
        data: Any = event.data
        delta: str = data.delta
        key = (data.type, data.stream if type(data) is MessageStreamed else None)
        streams = self._runs.get(run_id)
        if streams is None:
            streams = self._runs[run_id] = {}
        stream = streams.get(key)
        # The run's other streams end here (text after thinking, stderr after stdout).
        released = self._release(event, run_id, keep=key) if len(streams) > (stream is not None) else []
        if stream is None:
            stream = streams[key] = _Stream()
        context = stream.context
        start = len(context)
        text = context + stream.held + delta
        if not released and len(delta) <= OFF_LOOP_CHARS and self._quick.search(text, start) is None:
            # The usual delta: no possible secret's start, no literal any secret contains.
            out = text[start:]
            stream.context, stream.held = text[-_CONTEXT_CHARS:], ""
            return None if out == delta else attrs.evolve(event, data=_delta(data, out))
        # Held back: from where a secret may have started and not ended (at most MAX_HOLD_CHARS).
        match = self._hold.search(text, max(start, len(text) - MAX_HOLD_CHARS))
        cut = len(text) if match is None else match.start()
        stream.held = text[cut:]
        if cut == start:
            return released  # all of it held ([]: the delta is not stored now)
        stream.context = text[cut - _CONTEXT_CHARS : cut] if cut > _CONTEXT_CHARS else text[:cut]
        if cut - start > OFF_LOOP_CHARS:
            return self._stream_off_loop(released, event, text[:cut], start)
        cleaned = self._redact_from(text[:cut], start)
        if not released:
            return None if cleaned == delta else attrs.evolve(event, data=_delta(data, cleaned))
        released.append(attrs.evolve(event, data=_delta(data, cleaned)))
        return released

    async def _stream_off_loop(self, released: list[Event], event: Event, text: str, start: int) -> list[Event]:
        cleaned = await trio.to_thread.run_sync(self._redact_from, text, start)
        data: Any = event.data
        return [*released, attrs.evolve(event, data=_delta(data, cleaned))]

    def _release(self, event: Event, run_id: str, keep: tuple[EventType, str | None] | None = None) -> list[Event]:
        """The held tails of ``run_id``'s streams (but ``keep``) as events, redacted,
        to be stored before ``event``; a run's terminal event forgets its streams."""
        streams = self._runs.get(run_id)
        if not streams:
            return []
        if event.type in RUN_END_TYPES:
            del self._runs[run_id]
        released = []
        for key, stream in streams.items():
            if key == keep:
                continue
            text, start = stream.flush()
            if len(text) > start:
                kind, tag = key
                cleaned = self._redact_from(text, start)
                data = (
                    MessageStreamed(cleaned, tag) if kind is EventType.MESSAGE_STREAMED else ThinkingStreamed(cleaned)
                )
                released.append(Event.new(data, session_id=event.session_id, run_id=run_id, provider=event.provider))
        return released

    @hookimpl
    def asm_run_finished(self, session: Session, run: Run) -> None:
        """Forget the run's streams (their tails went out with its terminal event)."""
        self._runs.pop(run.id, None)

    @hookimpl
    def asm_transform_record(self, record: Session | Run) -> Session | Run | None:
        """The session or run with secrets scrubbed from its input, result, error
        and metadata, or ``None`` when it holds none."""
        cleaned = self._redact(record)
        return None if cleaned is record else cleaned

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            pairs = [(k, v, self._redact(k), self._redact(v)) for k, v in value.items()]
            if all(k is nk and v is nv for k, v, nk, nv in pairs):
                return value
            return {nk: nv for _, _, nk, nv in pairs}
        if isinstance(value, list | tuple):
            cleaned = [self._redact(item) for item in value]
            if all(a is b for a, b in zip(cleaned, value, strict=True)):
                return value
            return type(value)(cleaned)
        if attrs.has(type(value)):
            changes = {}
            for field in attrs.fields(type(value)):
                current = getattr(value, field.name)
                new = self._redact(current)
                if new is not current:
                    changes[field.name] = new
            return attrs.evolve(value, **changes) if changes else value
        return value


class _Stream:
    """One stream of deltas: the tail held back, and the released text just
    before it (left context for the patterns, never emitted again)."""

    __slots__ = ("context", "held")

    def __init__(self) -> None:
        self.context = ""
        self.held = ""

    def flush(self) -> tuple[str, int]:
        """The held tail, released (the stream ended), as ``(text, start)``."""
        text, start = self.context + self.held, len(self.context)
        self.context, self.held = text[-_CONTEXT_CHARS:], ""
        return text, start


def _delta(data: Any, text: str) -> MessageStreamed | ThinkingStreamed:
    """``data`` (a streamed delta) with ``text`` instead (faster than ``attrs.evolve``)."""
    return MessageStreamed(text, data.stream) if type(data) is MessageStreamed else ThinkingStreamed(text)


def _text_size(value: Any, budget: int = OFF_LOOP_CHARS + 1) -> int:
    """The characters of text in ``value``, counted up to ``budget``."""
    if isinstance(value, str):
        return len(value)
    total = 0
    items: Iterable[Any]
    if isinstance(value, dict):
        items = (*value.keys(), *value.values())
    elif isinstance(value, list | tuple):
        items = value
    elif attrs.has(type(value)):
        items = (getattr(value, f.name) for f in attrs.fields(type(value)))
    else:
        return 0
    for item in items:
        total += _text_size(item, budget - total)
        if total >= budget:
            break
    return total
