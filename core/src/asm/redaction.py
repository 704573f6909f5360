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

Limitation: a secret split across two ``message_streamed`` deltas is not seen
as one (each delta is scrubbed alone); the complete ``message_received`` is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from asm.errors import AsmError
from asm.events import Event, EventData, MessageStreamed
from asm.hookspecs import hookimpl
from asm.model import Run, Session

__all__ = ["DEFAULT_PATTERNS", "EventRedactor"]

#: kind -> pattern. Where a pattern has a group, only the group is replaced
#: (a URL keeps its user and host, losing only the password).
DEFAULT_PATTERNS: Final[dict[str, str]] = {
    "pem_private_key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    "anthropic_key": r"sk-ant-[A-Za-z0-9_\-]{20,}",
    "openai_key": r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "aws_secret_key": r"(?i:aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40,})",
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_\-]{35}",
    "jwt": r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    "bearer_token": r"(?i:\bbearer\s+)([A-Za-z0-9._~+/=\-]{16,})",
    "url_password": r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:([^/\s@]+)@",
}


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
        patterns = {**(DEFAULT_PATTERNS if defaults else {}), **(extra_patterns or {})}
        self._rules = [_compile(kind, pattern) for kind, pattern in patterns.items()]
        # One pass with the union first: most text has no secret, and that is the hot path.
        self._any = re.compile("|".join(f"(?:{rule.pattern.pattern})" for rule in self._rules) or r"(?!)")

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if not self._any.search(text):
            return text
        for rule in self._rules:
            text = rule.pattern.sub(functools.partial(_replace, kind=rule.kind), text)
        return text

    @hookimpl
    def asm_transform_event(self, event: Event) -> Event | None:
        """The event with its payload scrubbed, or ``None`` when it holds no secret."""
        data = event.data
        if type(data) is MessageStreamed:  # the hot path: one short string
            if not self._any.search(data.delta):
                return None
            cleaned: EventData = attrs.evolve(data, delta=self.redact_text(data.delta))
        else:
            cleaned = self._redact(data)
            if cleaned is data:
                return None
        return attrs.evolve(event, data=cleaned)

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


def _replace(match: re.Match[str], kind: str) -> str:
    marker = f"[REDACTED:{kind}]"
    if match.re.groups and match.group(1) is not None:
        start, end = match.span(1)
        whole_start = match.start()
        text = match.group(0)
        return text[: start - whole_start] + marker + text[end - whole_start :]
    return marker
