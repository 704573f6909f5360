"""Policies: budgets and tool rules, enforced live while a run streams.

A :class:`Policy` has limits (tokens, duration, cost, tool calls), tool rules
(``allow`` / ``ask`` / ``deny`` glob patterns on tool names) and what to do on
a violation (``cancel`` the run, or only ``warn``)::

    strict = Policy("strict", limits=Limits(max_total_tokens=50_000, max_cost_usd="0.50"),
                    tool_rules=(ToolRule("rm*", "deny"), ToolRule("bash", "ask")))

In ``asm.toml``, every ``[policies.<name>]`` table applies to every run::

    [policies.budget]
    max_total_tokens = 100000
    max_duration_s = 600
    deny = ["delete_*"]
    ask = ["bash"]
    on_violation = "cancel"

Policies given at runtime, session and run level stack into one with
:func:`merge_policies`: the tightest limit wins, ``deny`` beats ``ask`` beats
``allow``, and ``cancel`` beats ``warn``. Within one policy, a tool matching
several rules gets the strictest; if the policy has ``allow`` rules, a tool
matching none of its rules is denied (an allow-list).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import attrs

from asm.errors import AsmError
from asm.model import to_decimal

__all__ = [
    "LIMIT_NAMES",
    "Limits",
    "Policy",
    "PolicyGuard",
    "ToolAction",
    "ToolRule",
    "Violation",
    "cli_tool_lists",
    "merge_policies",
]


class ToolAction(StrEnum):
    """What a tool rule says about a tool call, from least to most strict."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    @property
    def strictness(self) -> int:
        """0 for allow, 1 for ask, 2 for deny."""
        return _STRICTNESS[self]


_STRICTNESS: Final = {ToolAction.ALLOW: 0, ToolAction.ASK: 1, ToolAction.DENY: 2}


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AsmError("validation_error", f"{value!r} is not a whole number >= 0")
    return value


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        raise AsmError("validation_error", f"{value!r} is not a number of seconds >= 0")
    return float(value)


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    amount = to_decimal(value)
    if amount < 0:
        raise AsmError("validation_error", f"{value!r} is negative")
    return amount


@attrs.frozen
class Limits:
    """Budgets for one run; ``None`` means no limit."""

    max_total_tokens: int | None = attrs.field(default=None, converter=_count)
    max_input_tokens: int | None = attrs.field(default=None, converter=_count)
    max_output_tokens: int | None = attrs.field(default=None, converter=_count)
    max_tool_calls: int | None = attrs.field(default=None, converter=_count)
    max_duration_s: float | None = attrs.field(default=None, converter=_seconds)
    max_cost_usd: Decimal | None = attrs.field(default=None, converter=_money)


LIMIT_NAMES: Final = tuple(field.name for field in attrs.fields(Limits))


def _check_pattern(_: object, __: attrs.Attribute[str], pattern: str) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise AsmError("validation_error", f"tool pattern {pattern!r} must be a non-empty string")
    if pattern.count("[") != pattern.count("]"):
        raise AsmError("validation_error", f"tool pattern {pattern!r} is not a valid glob: unbalanced [ ]")


@attrs.frozen
class ToolRule:
    """``action`` for tools whose name matches the glob ``pattern`` (``*``, ``?``, ``[...]``)."""

    pattern: str = attrs.field(validator=_check_pattern)
    action: ToolAction = attrs.field(converter=ToolAction)

    def matches(self, tool_name: str) -> bool:
        """Whether the rule applies to ``tool_name`` (case-sensitive)."""
        return fnmatch.fnmatchcase(tool_name, self.pattern)


@attrs.frozen
class Policy:
    """A named set of limits and tool rules, and what to do when they are broken."""

    name: str
    limits: Limits = Limits()
    tool_rules: tuple[ToolRule, ...] = ()
    on_violation: str = attrs.field(default="cancel")
    #: the policies a merged policy was made of (each judges tools with its own allow-list)
    parts: tuple[Policy, ...] = ()

    @on_violation.validator
    def _check_action(self, _: attrs.Attribute[str], value: str) -> None:
        if value not in ("cancel", "warn"):
            raise AsmError("validation_error", f"on_violation must be 'cancel' or 'warn', not {value!r}")

    def tool_action(self, tool_name: str) -> ToolAction | None:
        """What this policy says about ``tool_name`` (``None``: nothing)."""
        if self.parts:
            actions = [a for a in (p.tool_action(tool_name) for p in self.parts) if a is not None]
            return max(actions, key=lambda a: a.strictness) if actions else None
        matching = [rule.action for rule in self.tool_rules if rule.matches(tool_name)]
        if matching:
            return max(matching, key=lambda a: a.strictness)
        if any(rule.action is ToolAction.ALLOW for rule in self.tool_rules):
            return ToolAction.DENY  # an allow-list: what it does not name is denied
        return None

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any], *, origin: str | None = None) -> Policy:
        """A policy from a ``[policies.<name>]`` table; each bad key is an
        ``invalid_config`` error naming it and where (``origin``) it came from."""
        where = f"policies.{name}"
        suffix = f" (from {origin})" if origin else ""
        known = {*LIMIT_NAMES, "allow", "ask", "deny", "on_violation"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise AsmError(
                "invalid_config",
                f"{where}{suffix}: unknown key(s) {', '.join(unknown)}; limits are {', '.join(LIMIT_NAMES)}, "
                "tool rules allow/ask/deny, and on_violation",
                details={"key": f"{where}.{unknown[0]}"},
            )
        limits: dict[str, Any] = {}
        for key in LIMIT_NAMES:
            if key in table:
                limits[key] = _field(where, suffix, key, lambda v, k=key: Limits(**{k: v}), table[key])
        rules = []
        for action in ("allow", "ask", "deny"):
            patterns = table.get(action, [])
            if isinstance(patterns, str) or not isinstance(patterns, list):
                raise AsmError("invalid_config", f"{where}.{action}{suffix} must be a list of glob patterns")
            for pattern in patterns:
                rules.append(_field(where, suffix, action, lambda p, a=action: ToolRule(p, a), pattern))
        on_violation = table.get("on_violation", "cancel")
        policy: Policy = _field(
            where, suffix, "on_violation", lambda v: cls(name, Limits(**limits), tuple(rules), v), on_violation
        )
        return policy


def _field(where: str, suffix: str, key: str, build: Any, value: Any) -> Any:
    try:
        built = build(value)
    except AsmError as exc:
        raise AsmError(
            "invalid_config", f"{where}.{key}{suffix}: {exc.message}", details={"key": f"{where}.{key}"}
        ) from None
    return getattr(built, key) if key in LIMIT_NAMES else built


_GLOB: Final = frozenset("*?[")


def cli_tool_lists(policy: Policy | None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The policy's tool rules as plain name lists a CLI's own flags can take:
    (denied names, allowed names or ``None``). Glob patterns cannot be passed
    on (a CLI knows its own tool names, not asm's globs); those stay enforced
    as the tool calls start. The allow list is the names every allow-listing
    part of the policy allows (``None`` unless each allow rule is a plain name).

    >>> cli_tool_lists(Policy("p", tool_rules=(ToolRule("WebFetch", "deny"), ToolRule("rm*", "deny"))))
    (('WebFetch',), None)
    """
    if policy is None:
        return (), None
    parts = policy.parts or (policy,)
    denied = sorted(
        {r.pattern for p in parts for r in p.tool_rules if r.action is ToolAction.DENY and not _GLOB & set(r.pattern)}
    )
    allowed: set[str] | None = None
    for part in parts:
        allows = [r.pattern for r in part.tool_rules if r.action is ToolAction.ALLOW]
        if not allows:
            continue
        if any(_GLOB & set(name) for name in allows):
            return tuple(denied), None
        allowed = set(allows) if allowed is None else allowed & set(allows)
    return tuple(denied), None if allowed is None else tuple(sorted(allowed - set(denied)))


def merge_policies(policies: Iterable[Policy]) -> Policy | None:
    """Stack policies into one: the tightest limit wins, ``deny`` beats ``ask``
    beats ``allow`` (each policy judging tools by its own rules), and
    ``cancel`` beats ``warn``. ``None`` for no policies.

    >>> a = Policy("a", Limits(max_total_tokens=10), on_violation="warn")
    >>> b = Policy("b", Limits(max_total_tokens=5, max_tool_calls=2))
    >>> merged = merge_policies([a, b])
    >>> merged.name, merged.limits.max_total_tokens, merged.limits.max_tool_calls, merged.on_violation
    ('a+b', 5, 2, 'cancel')
    """
    flat: list[Policy] = []
    for policy in policies:
        flat.extend(policy.parts or (policy,))
    if not flat:
        return None
    if len(flat) == 1:
        return flat[0]
    limits = {}
    for key in LIMIT_NAMES:
        values = [getattr(p.limits, key) for p in flat if getattr(p.limits, key) is not None]
        limits[key] = min(values) if values else None
    return Policy(
        name="+".join(p.name for p in flat),
        limits=Limits(**limits),
        tool_rules=tuple(rule for p in flat for rule in p.tool_rules),
        on_violation="cancel" if any(p.on_violation == "cancel" for p in flat) else "warn",
        parts=tuple(flat),
    )


@attrs.frozen
class Violation:
    """A broken rule: which policy, what kind, what asm does, and the figures."""

    policy: str
    kind: str
    action: str
    details: dict[str, Any] = attrs.field(factory=dict)


class PolicyGuard:
    """Watches one run's events against a (merged) policy; each limit is
    reported once. The manager feeds it; it only counts and judges."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.usage_in = 0
        self.usage_out = 0
        self.tool_calls = 0
        self._reported: set[str] = set()

    def owner(self, limit: str) -> str:
        """The name of the stacked policy whose limit is the binding one."""
        value = getattr(self.policy.limits, limit)
        for part in self.policy.parts or (self.policy,):
            if getattr(part.limits, limit) == value:
                return part.name
        return self.policy.name

    def tool_owner(self, tool_name: str, action: ToolAction) -> str:
        """The name of the stacked policy that ruled ``action`` on ``tool_name``."""
        for part in self.policy.parts or (self.policy,):
            if part.tool_action(tool_name) is action:
                return part.name
        return self.policy.name

    def _over(self, limit: str, actual: Any) -> list[Violation]:
        bound = getattr(self.policy.limits, limit)
        if bound is None or actual <= bound or limit in self._reported:
            return []
        self._reported.add(limit)
        details = {"limit": limit, "actual": str(actual), "bound": str(bound)}
        return [Violation(self.owner(limit), "budget_exceeded", self.policy.on_violation, details)]

    def on_usage(self, input_tokens: int, output_tokens: int) -> list[Violation]:
        """Count a usage update; the token limits it breaks."""
        self.usage_in += input_tokens
        self.usage_out += output_tokens
        return [
            *self._over("max_input_tokens", self.usage_in),
            *self._over("max_output_tokens", self.usage_out),
            *self._over("max_total_tokens", self.usage_in + self.usage_out),
        ]

    def on_cost(self, total_usd: Decimal) -> list[Violation]:
        """The run's cost so far; the cost limit if it breaks it."""
        return self._over("max_cost_usd", total_usd)

    def on_tool_call(self) -> list[Violation]:
        """Count a tool call; the tool-call limit if it breaks it."""
        self.tool_calls += 1
        return self._over("max_tool_calls", self.tool_calls)

    def on_duration(self, seconds: float) -> list[Violation]:
        """The run has lasted ``seconds``; the duration limit if it breaks it."""
        bound = self.policy.limits.max_duration_s
        if bound is None or "max_duration_s" in self._reported:
            return []
        self._reported.add("max_duration_s")
        details = {"limit": "max_duration_s", "actual": f"{seconds:g}", "bound": f"{bound:g}"}
        return [Violation(self.owner("max_duration_s"), "budget_exceeded", self.policy.on_violation, details)]
