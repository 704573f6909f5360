"""Provider options from a declared schema: types (cattrs, via ``parse_options``), ranges, choices."""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from asm.config import close_match
from asm.errors import AsmError
from asm.tools import PERMISSION_MODES

__all__ = ["HTTPOptions", "check_options", "option"]

_SCHEMA: Final = "asm.option"


def option(
    default: Any = attrs.NOTHING,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    nonempty: bool = False,
) -> Any:
    """An attrs field whose value :func:`check_options` checks: ``min`` / ``max``
    (inclusive), one of ``choices`` (with a did-you-mean), or ``nonempty``.
    ``None`` passes every check (an unset optional value).

    >>> @attrs.frozen
    ... class Options:
    ...     max_turns: int = option(10, min=1)
    >>> check_options(Options(0), "demo provider config", "invalid_config")
    Traceback (most recent call last):
    asm.errors.AsmError: [invalid_config] invalid demo provider config: max_turns must be >= 1, not 0
    """
    rule = {"min": min, "max": max, "choices": choices, "nonempty": nonempty}
    return attrs.field(default=default, metadata={_SCHEMA: rule})


def _problem(name: str, value: Any, rule: dict[str, Any]) -> str | None:
    low, high, choices = rule["min"], rule["max"], rule["choices"]
    if value is None:
        return None
    if rule["nonempty"] and not value:
        return f"{name} must not be empty"
    if choices is not None and value not in choices:
        close = close_match(str(value), choices)
        hint = f" (did you mean {close!r}?)" if close else ""
        return f"{name} must be one of {', '.join(choices)}, not {value!r}{hint}"
    if low is not None and high is not None and not low <= value <= high:
        return f"{name} must be between {low:g} and {high:g}, not {value}"
    if low is not None and high is None and value < low:
        return f"{name} must be >= {low:g}, not {value}"
    if high is not None and low is None and value > high:
        return f"{name} must be <= {high:g}, not {value}"
    return None


def check_options(options: attrs.AttrsInstance, where: str, code: str) -> None:
    """Raise ``code`` naming the first value out of its declared range, if any."""
    for field in attrs.fields(type(options)):
        rule = field.metadata.get(_SCHEMA)
        if rule is not None:
            problem = _problem(field.name, getattr(options, field.name), rule)
            if problem is not None:
                raise AsmError(code, f"invalid {where}: {problem}")


@attrs.frozen
class HTTPOptions:
    """The options every tool-loop HTTP provider takes (its config table and,
    for :attr:`RUN_KEYS`, per-run overrides). Subclass it to add a service's
    own options or to change a default or a range::

        @attrs.frozen
        class LyreOptions(HTTPOptions):
            model: str = option("lyre-1", nonempty=True)
            temperature: float | None = option(None, min=0.0, max=2.0)
    """

    #: Options a run may set (``options={...}``); a subclass may add its own.
    RUN_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"model", "system_prompt", "max_turns", "max_tokens", "temperature", "permission_mode", "tools", "sdk_opts"}
    )

    model: str = option("", nonempty=True)
    system_prompt: str | None = None
    max_turns: int = option(10, min=1)
    max_tokens: int | None = option(None, min=1)
    temperature: float | None = option(None, min=0.0, max=1.0)
    permission_mode: str = option("default", choices=PERMISSION_MODES)
    api_key: str | None = None
    base_url: str | None = None
    tools: list[str] = attrs.field(factory=list)
    sdk_opts: dict[str, Any] = attrs.field(factory=dict)

    def check(self, where: str, code: str) -> None:
        """Raise ``code`` naming the bad value, if any option is out of range."""
        check_options(self, where, code)
