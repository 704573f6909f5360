"""The ``router`` provider: one provider name in front of several members.

::

    [providers.smart]
    plugin = "router"
    members = ["fast", "deep"]      # provider names: plugins or named instances
    strategy = "weighted"           # or "prefer" (config order)
    weights = { fast = 3, deep = 1 }

For each run the router drops the members that lack a capability the run
requires, whose circuit is open, or whose estimated cost exceeds the run's cost
budget left; orders the rest (the session's sticky member first, then by
preference or weighted draw) and tries them. A member that fails with a
retryable error before any output is failed over to the next, up to
``max_attempts``; anything else ends the run with that member's error. Every
decision is an event: ``route_selected``, ``route_failed_over``,
``circuit_opened``, ``circuit_half_open``, ``circuit_closed``.
"""

from __future__ import annotations

import contextvars
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs
import trio

from asm import AsmError, Capabilities, ProviderError, RunInput, RunResult, TokenUsage, load_plugins, parse_options
from asm.config import close_match
from asm.errors import category_of
from asm.events import (
    CircuitClosed,
    CircuitHalfOpen,
    CircuitOpened,
    CostUpdated,
    ErrorOccurred,
    EventData,
    RouteFailedOver,
    RouteSelected,
    RouteSkip,
    RunRetrying,
    TokenUsageUpdated,
)
from asm.model import CAPABILITY_NAMES
from asm.plugins import PluginRegistry
from asm.ports import BudgetView, Emit, Provider
from asm.retry import RetryPolicy, with_retries
from asm_router._breaker import BreakerSettings, CircuitBreaker, CircuitState, CircuitStatus, Ticket

__all__ = [
    "MemberStatus",
    "RouterOptions",
    "RouterProvider",
    "RouterStatus",
    "create_router",
    "estimate_tokens",
    "pick_weighted",
]

STRATEGIES: Final = ("prefer", "weighted")

#: Events that are not output: a member that emitted only these may still be failed over
#: (a retry wrapper's ``run_retrying``, a diagnostic ``error_occurred``).
_NOT_OUTPUT: Final = frozenset({RunRetrying, ErrorOccurred})
#: Events a member may send without a model, which the router names (for pricing).
_MODEL_NAMED: Final = frozenset({TokenUsageUpdated, CostUpdated})
#: Capabilities that promise a behaviour rather than offer a feature: the router has one
#: only if every member has it (the manager would otherwise skip a check a member needs).
_ALL_MUST: Final = frozenset({"authorizes_tools", "takes_argv"})

#: The routers being built, innermost last: a router met again is a cycle.
_BUILDING: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("asm_router_building", default=())


@attrs.frozen
class RouterOptions:
    """The ``[providers.<name>]`` table of a router (see docs/routing.md)."""

    members: list[str] = attrs.field(factory=list)
    strategy: str = "prefer"
    #: member -> weight > 0 for ``weighted`` (default 1 each)
    weights: dict[str, Any] = attrs.field(factory=dict)
    #: members tried per run at most (default: all of them)
    max_attempts: int | None = None
    #: seconds a session keeps the member that last served it (0: no stickiness)
    sticky_ttl: float = 600.0
    #: the circuit breaker of each member (and model)
    failure_threshold: int = 5
    failure_window: float = 60.0
    cooldown: float = 30.0
    max_cooldown: float = 600.0
    cooldown_backoff: float = 2.0
    #: seconds of time-to-first-event that halve a member's weighted score
    latency_reference: float = 1.0
    #: output tokens a cost estimate assumes when the run sets no ``max_tokens`` option
    default_max_tokens: int = 4096
    #: same-member retries before failing over: ``{max_retries, base_delay, max_delay}`` (asm.retry)
    retry: dict[str, Any] | None = None


@attrs.frozen
class MemberStatus:
    """One member as :meth:`RouterProvider.status` shows it."""

    name: str
    provider: str
    weight: float
    #: moving average of its time to first event (seconds); ``None`` before its first output
    latency_s: float | None
    circuits: tuple[CircuitStatus, ...]


@attrs.frozen
class RouterStatus:
    """A router's members, their circuits and its sticky sessions."""

    name: str
    strategy: str
    members: tuple[MemberStatus, ...]
    sticky_sessions: int


class _Member:
    __slots__ = ("breakers", "latency", "name", "provider", "runner", "weight")

    def __init__(self, name: str, provider: Provider, weight: float, retry: RetryPolicy | None) -> None:
        self.name = name
        self.provider = provider
        self.runner: Provider = with_retries(provider, retry)
        self.weight = weight
        self.latency: float | None = None
        self.breakers: dict[str | None, CircuitBreaker] = {}

    def model_for(self, run: RunInput) -> str | None:
        model_for = getattr(self.provider, "model_for", None)
        model = model_for(run) if callable(model_for) else run.options.get("model")
        return model if isinstance(model, str) and model else None


class RouterProvider:
    """A provider that routes each run to one of its ``members`` (see the module docstring).

    >>> from asm.providers.scripted import ScriptedProvider
    >>> router = RouterProvider({"a": ScriptedProvider(["hi"], name="a")}, RouterOptions(members=["a"]))
    >>> router.status().members[0].circuits
    ()

    ``clock`` (seconds, monotonic) and ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        members: Mapping[str, Provider],
        options: RouterOptions,
        *,
        name: str = "router",
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.options = options
        retry = RetryPolicy.from_config(options.retry) if options.retry is not None else None
        self._members = [
            _Member(member, provider, float(options.weights.get(member, 1.0)), retry)
            for member, provider in members.items()
        ]
        self._breaker_settings = BreakerSettings(
            failure_threshold=options.failure_threshold,
            window=options.failure_window,
            cooldown=options.cooldown,
            max_cooldown=options.max_cooldown,
            backoff=options.cooldown_backoff,
        )
        self._max_attempts = options.max_attempts or len(self._members)
        self._clock = clock
        self._rng = rng or random.Random()
        #: session id -> (member, last served at), least recently served first
        self._sticky: OrderedDict[str, tuple[_Member, float]] = OrderedDict()
        self._capabilities = _union([_capabilities(m.provider) for m in self._members])

    # -- the Provider protocol ------------------------------------------------

    def capabilities(self) -> Capabilities:
        """What some member can do (each run goes to a member that has what it requires)."""
        return self._capabilities

    async def aclose(self) -> None:
        """Close every member that holds resources, then raise the first failure."""
        errors: list[Exception] = []
        for member in self._members:
            close = getattr(member.provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # noqa: BLE001 - raised below, after every member is closed
                    errors.append(exc)
        if errors:
            raise errors[0]

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Route ``run``: choose, try, fail over (see the module docstring)."""
        candidates, refused = self._capable(run)
        budget = _Budget.of(emit, run, self.options.default_max_tokens)
        tried: set[str] = set()
        error: AsmError | None = None
        attempt = 0
        while attempt < self._max_attempts:
            chosen = self._choose(run, candidates, tried, refused, budget)
            if isinstance(chosen, AsmError):
                raise error or chosen
            member, model, breaker, ticket, reason, skipped = chosen
            attempt += 1
            tried.add(member.name)
            if ticket.probe:
                await emit(CircuitHalfOpen(self.name, member.name, model))
            await emit(RouteSelected(self.name, member.name, reason, attempt, model, skipped))
            watched = _Attempt(model, self._clock())
            outcome: bool | None = None
            try:
                result = await member.runner.execute(run, _member_emit(emit, watched, self._clock))
                outcome = True
            except AsmError as exc:
                error = exc
                outcome = False if _members_fault(exc) else None
            except Exception as exc:  # noqa: BLE001 - a member's bug fails the attempt, not the router
                error = AsmError(
                    "provider_error",
                    f"router {self.name!r}: member {member.name!r} crashed: {exc!r}",
                    retryable=False,
                    details={"provider_error": ProviderError(member.name, "crash", repr(exc)), "member": member.name},
                )
                outcome = False
            finally:
                if outcome is None:
                    breaker.release(ticket)  # cancelled, or not the member's fault: no verdict
                if watched.first_event_at is not None:
                    member.latency = _average(member.latency, watched.first_event_at - watched.started_at)
            if outcome:
                if breaker.record_success(ticket):
                    await emit(CircuitClosed(self.name, member.name, model))
                self._stick(run.session_id, member)
                model_seen = result.model or watched.model
                routed = {"router": self.name, "member": member.name, "attempts": attempt}
                # Built directly: attrs.evolve costs a few microseconds more, on every run.
                return RunResult(
                    result.output,
                    result.stop_reason,
                    result.usage,
                    model_seen,
                    result.cost,
                    {**result.metadata, "router": routed},
                )
            assert error is not None
            if outcome is False and breaker.record_failure(ticket):
                settings = breaker.status(member.name, model)
                await emit(
                    CircuitOpened(self.name, member.name, model, settings.failures, settings.cooldown_s, error.code)
                )
            self._unstick(run.session_id, member)
            if watched.output_started:
                return await self.after_output_failure(member.name, error, run, emit)
            if not error.retryable or attempt >= self._max_attempts:
                raise error
            # A cancel (cancel_run, a policy, a timeout) that landed as the member failed:
            # it stands, and nothing is failed over after it.
            await trio.lowlevel.checkpoint_if_cancelled()
            await emit(RouteFailedOver(self.name, member.name, attempt, error.code, error.message))
        assert error is not None
        raise error

    async def after_output_failure(self, member: str, error: AsmError, run: RunInput, emit: Emit) -> RunResult:
        """The continuity hook: ``member`` failed with ``error`` after it had emitted
        output, so another member cannot simply start over (its output would repeat).
        Today the run fails with the member's error; carrying the transcript so far
        to another member (asm.continuity) is what a future version does here."""
        raise error

    def status(self) -> RouterStatus:
        """Each member's weight, latency and circuits, and the sticky sessions."""
        self._forget_sticky(self._clock())
        return RouterStatus(
            name=self.name,
            strategy=self.options.strategy,
            members=tuple(
                MemberStatus(
                    name=m.name,
                    provider=getattr(m.provider, "name", m.name),
                    weight=m.weight,
                    latency_s=m.latency,
                    circuits=tuple(b.status(m.name, model) for model, b in m.breakers.items()),
                )
                for m in self._members
            ),
            sticky_sessions=len(self._sticky),
        )

    # -- choosing -------------------------------------------------------------

    def _capable(self, run: RunInput) -> tuple[list[_Member], list[RouteSkip]]:
        required = run.required_capabilities
        if not required:
            return self._members, []
        capable: list[_Member] = []
        refused: list[RouteSkip] = []
        for member in self._members:
            missing = _capabilities(member.provider).missing(required)
            if missing:
                refused.append(RouteSkip(member.name, "missing_capability", f"lacks {', '.join(missing)}"))
            else:
                capable.append(member)
        if not capable:
            lacking = "; ".join(f"{s.member} {s.detail}" for s in refused)
            raise AsmError(
                "missing_required_capability",
                f"router {self.name!r}: no member has every capability the run requires "
                f"({', '.join(required)}): {lacking}; add a member that has them or drop the requirement",
                details={"router": self.name, "required": list(required), "members": [s.member for s in refused]},
            )
        return capable, refused

    def _choose(
        self,
        run: RunInput,
        candidates: list[_Member],
        tried: set[str],
        refused: list[RouteSkip],
        budget: _Budget | None,
    ) -> tuple[_Member, str | None, CircuitBreaker, Ticket, str, tuple[RouteSkip, ...]] | AsmError:
        """The next member to try, with its breaker admission, or the error that
        says why none can be. Synchronous: the breaker check and the admission
        happen with no other task in between."""
        skipped = list(refused)
        open_: list[tuple[_Member, str | None, CircuitBreaker]] = []
        for member in candidates:
            if member.name in tried:
                skipped.append(RouteSkip(member.name, "tried", "failed earlier in this run"))
                continue
            model = member.model_for(run)
            breaker = self._breaker(member, model)
            if not breaker.available():
                reason, detail = breaker.why_not()
                skipped.append(RouteSkip(member.name, reason, detail))
                continue
            if budget is not None:
                over = budget.over(model)
                if over is not None:
                    skipped.append(RouteSkip(member.name, "over_budget", over))
                    continue
            open_.append((member, model, breaker))
        if not open_:
            return self._none_left(skipped)
        pick, reason = self._order(run, open_)
        member, model, breaker = open_[pick]
        ticket = breaker.admit()
        return member, model, breaker, ticket, "probe" if ticket.probe else reason, tuple(skipped)

    def _order(self, run: RunInput, open_: Sequence[tuple[_Member, str | None, CircuitBreaker]]) -> tuple[int, str]:
        sticky = self._sticky_member(run.session_id)
        if sticky is not None:
            for index, (member, _, breaker) in enumerate(open_):
                if member is sticky and breaker.state is CircuitState.CLOSED:
                    return index, "sticky"
        if self.options.strategy == "prefer" or len(open_) == 1:
            return 0, "preferred"
        scores = [self._score(member, breaker) for member, _, breaker in open_]
        return pick_weighted(scores, self._rng.random()), "weighted"

    def _score(self, member: _Member, breaker: CircuitBreaker) -> float:
        """weight x health x latency factor (see docs/routing.md)."""
        health = 1.0 / (1.0 + breaker.recent_failures())
        reference = self.options.latency_reference
        speed = 1.0 if member.latency is None else reference / (reference + member.latency)
        return member.weight * health * speed

    def _none_left(self, skipped: list[RouteSkip]) -> AsmError:
        why = "; ".join(f"{s.member}: {s.detail or s.reason}" for s in skipped)
        details = {"router": self.name, "skipped": [attrs.asdict(s) for s in skipped]}
        if (
            skipped
            and all(s.reason in ("over_budget", "missing_capability", "tried") for s in skipped)
            and any(s.reason == "over_budget" for s in skipped)
        ):
            return AsmError(
                "policy_violation",
                f"router {self.name!r}: every member would exceed the run's cost budget ({why}); "
                "raise max_cost_usd or add a cheaper member",
                details=details,
            )
        return AsmError(
            "provider_unavailable",
            f"router {self.name!r}: no member can take the run now ({why}); try again later",
            details=details,
        )

    def _breaker(self, member: _Member, model: str | None) -> CircuitBreaker:
        breaker = member.breakers.get(model)
        if breaker is None:
            breaker = member.breakers[model] = CircuitBreaker(self._breaker_settings, clock=self._clock)
        return breaker

    # -- stickiness -----------------------------------------------------------

    def _sticky_member(self, session_id: str) -> _Member | None:
        if not self.options.sticky_ttl or not session_id:
            return None
        now = self._clock()
        self._forget_sticky(now)
        entry = self._sticky.get(session_id)
        return entry[0] if entry is not None else None

    def _stick(self, session_id: str, member: _Member) -> None:
        if self.options.sticky_ttl and session_id:
            self._sticky[session_id] = (member, self._clock())
            self._sticky.move_to_end(session_id)

    def _unstick(self, session_id: str, member: _Member) -> None:
        entry = self._sticky.get(session_id)
        if entry is not None and entry[0] is member:
            del self._sticky[session_id]

    def _forget_sticky(self, now: float) -> None:
        # Least recently served first: stop at the first one still fresh.
        horizon = now - self.options.sticky_ttl
        while self._sticky:
            session_id, (_, served_at) = next(iter(self._sticky.items()))
            if served_at > horizon:
                return
            del self._sticky[session_id]


def pick_weighted(scores: Sequence[float], u: float) -> int:
    """The index a draw ``u`` in [0, 1) picks, each index with probability
    ``score / sum(scores)``; scores of 0 are never picked (unless all are 0).

    >>> pick_weighted([3.0, 1.0], 0.74), pick_weighted([3.0, 1.0], 0.76)
    (0, 1)
    """
    total = math.fsum(scores)
    if total <= 0:
        return 0
    target = u * total
    cumulative = 0.0
    last = 0
    for index, score in enumerate(scores):
        if score <= 0:
            continue
        cumulative += score
        last = index
        if target < cumulative:
            return index
    return last  # u * total rounded up to the sum itself


def estimate_tokens(run: RunInput, default_max_tokens: int) -> TokenUsage:
    """What a run is expected to use, for a cost estimate: input tokens as the
    prompt and transcript's characters / 4, output tokens as its ``max_tokens``
    option (else ``default_max_tokens``).

    >>> estimate_tokens(RunInput.coerce("x" * 400), 1000)
    TokenUsage(input_tokens=100, output_tokens=1000, cache_read_tokens=0, cache_write_tokens=0)
    """
    chars = sum(len(message.content) for message in run.messages)
    system = run.options.get("system_prompt")
    if isinstance(system, str):
        chars += len(system)
    max_tokens = run.options.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        max_tokens = default_max_tokens
    return TokenUsage(input_tokens=math.ceil(chars / 4), output_tokens=max_tokens)


class _Budget:
    """The run's cost budget left and the pricing to estimate each member's cost with."""

    def __init__(self, view: BudgetView, usage: TokenUsage, left: Decimal) -> None:
        self._view = view
        self._usage = usage
        self.left = left

    @classmethod
    def of(cls, emit: Emit, run: RunInput, default_max_tokens: int) -> _Budget | None:
        # Duck-typed on purpose: isinstance() on a runtime-checkable protocol costs ~10 us a run.
        if getattr(emit, "pricing", None) is None:
            return None
        view: BudgetView = emit  # type: ignore[assignment]
        left = view.remaining_cost_usd()
        if left is None:
            return None
        return cls(view, estimate_tokens(run, default_max_tokens), left)

    def over(self, model: str | None) -> str | None:
        """Why a member on ``model`` would exceed the budget, or ``None`` if it would not
        (or its price is unknown: no estimate, no skip)."""
        pricing = self._view.pricing
        left = self._view.remaining_cost_usd()  # a failed attempt may have spent some
        cost = pricing.cost(model, self._usage) if pricing is not None else None
        if cost is None or left is None or cost.total_usd <= left:
            return None
        return (
            f"estimated ${cost.total_usd:.4f} on {model} ({self._usage.input_tokens} in, "
            f"{self._usage.output_tokens} out) > ${left:.4f} left"
        )


class _Attempt:
    """What one attempt's emit noted: whether (and when) output started, and the member's model."""

    __slots__ = ("first_event_at", "model", "output_started", "started_at")

    def __init__(self, model: str | None, started_at: float) -> None:
        self.model = model
        self.started_at = started_at
        self.output_started = False
        self.first_event_at: float | None = None


def _member_emit(emit: Emit, attempt: _Attempt, clock: Callable[[], float]) -> Emit:
    """The run's ``emit`` as a member sees it: it notes in ``attempt`` whether output has
    started, and names the member's model on usage and cost reported without one.

    A plain function carrying the other ``Emit`` members as attributes, not an object with
    ``__call__``: calling an instance costs ~0.3 us more per event. And not a coroutine
    itself: it hands back the run's emit's, so an event costs one plain call more."""
    model = attempt.model

    def watched(data: EventData, /) -> Coroutine[Any, Any, None]:
        kind = type(data)
        if not attempt.output_started and kind not in _NOT_OUTPUT:
            attempt.output_started = True
            attempt.first_event_at = clock()
        if kind in _MODEL_NAMED and model is not None and data.model is None:  # type: ignore[attr-defined]
            data = attrs.evolve(data, model=model)  # type: ignore[misc]
        return emit(data)

    async def request_approval(tool_call_id: str, tool_name: str, tool_input: dict[str, Any]) -> bool:
        attempt.output_started = True
        return await emit.request_approval(tool_call_id, tool_name, tool_input)

    async def authorize_tool(
        tool_call_id: str, tool_name: str, tool_input: dict[str, Any], *, default: str = "allow"
    ) -> bool:
        attempt.output_started = True
        return await emit.authorize_tool(tool_call_id, tool_name, tool_input, default=default)

    def remaining_cost_usd() -> Decimal | None:
        remaining = getattr(emit, "remaining_cost_usd", None)
        return remaining() if callable(remaining) else None

    members: Emit = watched  # type: ignore[assignment]
    members.request_approval = request_approval  # type: ignore[method-assign]
    members.authorize_tool = authorize_tool  # type: ignore[method-assign]
    members.error_text_max_bytes = getattr(emit, "error_text_max_bytes", 16384)
    members.error_text_max_lines = getattr(emit, "error_text_max_lines", 200)
    # A router among the members (routers stacked) budgets with the same view.
    extra: Any = members
    extra.pricing = getattr(emit, "pricing", None)
    extra.remaining_cost_usd = remaining_cost_usd
    return members


def _members_fault(error: AsmError) -> bool:
    """Does ``error`` count against the member's circuit? Its service failing or
    timing out does; the run's own input or a policy does not."""
    return category_of(error.code) == "provider" or error.code == "timeout"


def _average(previous: float | None, sample: float) -> float:
    # An exponential moving average: recent runs count most, one slow run does not dominate.
    return sample if previous is None else 0.8 * previous + 0.2 * sample


def _capabilities(provider: Provider) -> Capabilities:
    try:
        return provider.capabilities()
    except Exception:  # noqa: BLE001 - as the manager does: a provider that cannot say has nothing extra
        return Capabilities()


def _union(capabilities: Sequence[Capabilities]) -> Capabilities:
    flags = {
        name: (all if name in _ALL_MUST else any)(getattr(c, name) for c in capabilities) for name in CAPABILITY_NAMES
    }
    return Capabilities(**flags)


# -- the factory ----------------------------------------------------------------


def _fail(name: str, message: str, **details: Any) -> AsmError:
    return AsmError("invalid_config", f"router {name!r}: {message}", details={"router": name, **details})


def _check(name: str, options: RouterOptions, registry: PluginRegistry) -> None:
    """Every mistake a router's table can hold, as one ``invalid_config`` line."""
    if not options.members:
        raise _fail(name, 'has no members; list provider names: members = ["fast", "deep"]')
    installed = registry.names("providers")
    for member in options.members:
        if member not in installed:
            close = close_match(member, installed)
            hint = f"; did you mean {close!r}?" if close else ""
            raise _fail(
                name,
                f"member {member!r} is not a registered provider (installed: {', '.join(installed)}){hint}",
                member=member,
            )
    if len(set(options.members)) != len(options.members):
        twice = sorted({m for m in options.members if options.members.count(m) > 1})
        raise _fail(name, f"lists {', '.join(map(repr, twice))} more than once; list each member once")
    if options.strategy not in STRATEGIES:
        raise _fail(name, f"strategy must be 'prefer' or 'weighted', not {options.strategy!r}")
    for member, weight in options.weights.items():
        if member not in options.members:
            raise _fail(name, f"weights name {member!r}, which is not a member ({', '.join(options.members)})")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise _fail(name, f"the weight of {member!r} must be a number > 0, not {weight!r}", member=member)
    positive = {
        "cooldown": options.cooldown,
        "max_cooldown": options.max_cooldown,
        "failure_window": options.failure_window,
        "latency_reference": options.latency_reference,
    }
    for key, value in positive.items():
        if not (math.isfinite(value) and value > 0):
            raise _fail(name, f"{key} must be a number of seconds > 0, not {value!r}", key=key)
    if options.max_cooldown < options.cooldown:
        raise _fail(name, f"max_cooldown ({options.max_cooldown:g}) is shorter than cooldown ({options.cooldown:g})")
    if not (math.isfinite(options.cooldown_backoff) and options.cooldown_backoff >= 1):
        raise _fail(name, f"cooldown_backoff must be a number >= 1, not {options.cooldown_backoff!r}")
    if not (math.isfinite(options.sticky_ttl) and options.sticky_ttl >= 0):
        raise _fail(name, f"sticky_ttl must be a number of seconds >= 0 (0: no stickiness), not {options.sticky_ttl!r}")
    counts = {
        "failure_threshold": options.failure_threshold,
        "default_max_tokens": options.default_max_tokens,
        "max_attempts": options.max_attempts if options.max_attempts is not None else 1,
    }
    for key, count in counts.items():
        if count < 1:
            raise _fail(name, f"{key} must be a whole number >= 1, not {count!r}", key=key)


def create_router(
    config: dict[str, Any], *, registry: PluginRegistry | None = None, name: str = "router"
) -> RouterProvider:
    """The ``router`` provider's factory: checks the table, then builds each member
    by name from ``registry`` (so from the user's own tables and named instances).

    A mistake is ``invalid_config`` here, when the runtime builds the router, never
    at a run: no members, an unknown member, a cycle of routers, a weight that is
    not a number > 0, a cooldown <= 0, ...
    """
    options = parse_options(RouterOptions, config, "router provider")
    registry = registry if registry is not None else load_plugins()
    _check(name, options, registry)
    if options.retry is not None:
        try:
            RetryPolicy.from_config(options.retry)
        except AsmError as exc:
            raise _fail(name, f"retry: {exc.message}") from None
    building = _BUILDING.get()
    if name in building:
        cycle = " -> ".join([*building[building.index(name) :], name])
        raise _fail(
            name, f"routers form a cycle ({cycle}); a router cannot be its own member, directly or through another"
        )
    token = _BUILDING.set((*building, name))
    try:
        members = {member: registry.create("providers", member) for member in options.members}
    finally:
        _BUILDING.reset(token)
    return RouterProvider(members, options, name=name)
