"""A run's governance gate: the ``emit`` a provider gets.

The first stage of a run's event path: each payload the provider emits is
checked (providers emit content, not lifecycle), its usage and cost counted and
priced, the run's policies judged on it (limits, tools, approvals), and then it
is handed to the run's :class:`asm._write_queue.WriteQueue`. A plain streamed
delta, the usual payload, concerns none of that and goes straight to the queue.
"""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from asm._write_queue import WriteQueue
from asm.cost import Pricing
from asm.errors import AsmError
from asm.events import (
    LIFECYCLE_TYPES,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    CostUpdated,
    ErrorOccurred,
    EventData,
    EventType,
    MessageStreamed,
    PolicyViolation,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallStarted,
    _fresh_event,
)
from asm.model import Cost, Run, RunResult, TokenUsage
from asm.policy import PolicyGuard, ToolAction, Violation

if TYPE_CHECKING:
    from asm.manager import SessionManager, _ActiveRun

#: What a provider may not emit: the lifecycle (the manager's) and compaction markers (a store's).
_NOT_FROM_PROVIDERS: Final = LIFECYCLE_TYPES | {EventType.EVENTS_COMPACTED, EventType.RUN_INTERRUPTED}


class RunGate:
    """The ``emit`` (:class:`asm.ports.Emit`, :class:`asm.ports.BudgetView`) a run's
    provider gets: governance in front of the run's write queue (``queue``)."""

    def __init__(
        self,
        manager: SessionManager,
        run: Run,
        queue: WriteQueue,
        active: _ActiveRun,
        guard: PolicyGuard | None = None,
        *,
        model: str | None = None,
        judge_tool_starts: bool = True,
    ) -> None:
        self._manager = manager
        self.queue = queue
        self._put = queue.put
        self._judge_tool_starts = judge_tool_starts
        self._active = active
        self._guard = guard
        self._authorized: set[str] = set()
        self._run = run
        self._session_id = run.session_id
        self._run_id = run.id
        self._provider = queue.provider
        self.error_text_max_bytes = manager.error_text_max_bytes
        self.error_text_max_lines = manager.error_text_max_lines
        self.usage = TokenUsage()
        #: the run's model: planned before it starts, then as the provider reports it
        self.model = model
        self._computed_cost: Cost | None = Cost() if manager.pricing is not None else None
        self._reported_cost: Cost | None = None
        self._unpriced: set[str | None] = set()

    @property
    def cost(self) -> Cost | None:
        """The run's cost so far: the provider's own figure if it reports one, else
        computed from its tokens; ``None`` while any tokens were spent on an unpriced model."""
        return self._reported_cost if self._reported_cost is not None else self._computed_cost

    @property
    def pricing(self) -> Pricing | None:
        """The runtime's pricing tables (:class:`asm.ports.BudgetView`)."""
        return self._manager.pricing

    def remaining_cost_usd(self) -> Decimal | None:
        """The run's cost budget left (:class:`asm.ports.BudgetView`): its policies'
        tightest ``max_cost_usd`` less what it has cost so far; ``None`` without one."""
        bound = self._guard.policy.limits.max_cost_usd if self._guard is not None else None
        if bound is None:
            return None
        spent = self.cost
        return max(Decimal(0), bound - (spent.total_usd if spent is not None else Decimal(0)))

    async def __call__(self, data: EventData, /) -> None:
        """Judge one payload from the provider and queue it (waits only while the queue is full)."""
        if self._active.cancelled:
            await trio.lowlevel.checkpoint()  # a cancelled run takes no more events: raise Cancelled now
        # The usual payloads, streamed text: none of the checks below concerns them.
        if type(data) is MessageStreamed or type(data) is ThinkingStreamed:
            queue = self.queue
            # A delta of ASCII text (nothing for scrub to replace: asm._write_queue._ascii_delta),
            # not a command's stdout/stderr.
            if queue.takes_fresh and data.delta.isascii() and getattr(data, "stream", None) is None:
                # queue.put(), inlined for the one event of a delta that nothing needs to look at.
                buffer = queue.buffer
                buffer.append(_fresh_event(self._session_id, self._run_id, data, self._provider))
                if queue.idle:
                    queue.wake()
                if len(buffer) >= queue.capacity:
                    await queue.wait_for_space()
                return
            await self._put(data)
            return
        if not isinstance(data, EventData) or data.type in _NOT_FROM_PROVIDERS:
            raise AsmError(
                "validation_error",
                f"provider {self._provider!r} emitted {data!r}; providers emit content payloads from asm.events, "
                "and the manager emits the lifecycle ones (a store the compaction markers, and whoever takes a "
                "run over its run_interrupted)",
            )
        guard = self._guard
        if isinstance(data, TokenUsageUpdated):
            self.usage = self.usage + data.usage
            self.model = data.model or self.model
            await self._put(data)
            if guard is not None:
                await self._enforce(guard.on_usage(data.usage.input_tokens, data.usage.output_tokens))
            await self._price(data)
            return
        if isinstance(data, CostUpdated):
            self._reported_cost = data.cost
            self.model = data.model or self.model
            await self._put(data)
            if guard is not None:
                await self._enforce(guard.on_cost(data.cost.total_usd))
            return
        if isinstance(data, ToolCallStarted) and guard is not None:
            await self._put(data)
            await self._enforce(guard.on_tool_call())
            if self._judge_tool_starts and data.tool_call_id not in self._authorized:
                await self._judge_tool_call(guard, data)
            return
        if type(data) is ErrorOccurred and data.provider_error is not None:
            limits = self._manager
            cut = data.provider_error.truncated_to(
                max_bytes=limits.error_text_max_bytes, max_lines=limits.error_text_max_lines
            )
            data = attrs.evolve(data, provider_error=cut)
        await self._put(data)

    async def _price(self, update: TokenUsageUpdated) -> None:
        pricing = self._manager.pricing
        if pricing is None or self._reported_cost is not None:
            return
        model = update.model or self.model
        increment = pricing.cost(model, update.usage)
        if increment is None:
            # Said once, at the end (settle): the provider may still report its own cost.
            self._computed_cost = None
            self._unpriced.add(model)
            return
        if self._computed_cost is not None:
            self._computed_cost = self._computed_cost + increment
            await self._put(CostUpdated(self._computed_cost, model))
            if self._guard is not None:
                await self._enforce(self._guard.on_cost(self._computed_cost.total_usd))

    async def settle(self, result: RunResult | None) -> None:
        """At the run's end, before its terminal event: take the model and cost the
        provider's result reports, then, if tokens went to a model no table prices
        and the provider reported no cost of its own, say once per such model that
        the run's cost is unknown (``error_occurred``, code ``cost_unknown``)."""
        if result is not None:
            self.model = result.model or self.model
            if result.cost is not None:
                self._reported_cost = result.cost
        if self.cost is not None or self.queue.error is not None or self.queue.closed:
            return
        for model in sorted(self._unpriced, key=lambda m: m or ""):
            why = (
                f"no price for model {model!r}; add it under [pricing.<table>.models] in asm.toml"
                if model
                else f"the provider reported tokens without naming the model; set 'model' in "
                f"[providers.{self._provider}] or pass options={{'model': ...}}"
            )
            await self._put(ErrorOccurred("cost_unknown", f"the run's cost is unknown: {why}"))

    async def _enforce(self, violations: list[Violation]) -> None:
        """Record each violation; cancel the run if one says so (reason: its policy)."""
        if self.queue.closed:
            return
        for violation in violations:
            await self._put(PolicyViolation(violation.policy, violation.kind, violation.action, violation.details))
            if violation.action == "cancel" and not self._active.cancelled:
                self._active.reason = violation.policy
                self._active.cancel()

    async def judge_result(self, result: RunResult) -> None:
        """Judge the provider's final figures against the limits: usage or cost that
        only its result reports (or that exceeds what its updates said) counts too."""
        guard = self._guard
        if guard is None:
            return
        extra_in = max(0, result.usage.input_tokens - guard.usage_in)
        extra_out = max(0, result.usage.output_tokens - guard.usage_out)
        if extra_in or extra_out:
            await self._enforce(guard.on_usage(extra_in, extra_out))
        if result.cost is not None:
            await self._enforce(guard.on_cost(result.cost.total_usd))

    async def _judge_tool_call(self, guard: PolicyGuard, call: ToolCallStarted) -> None:
        # A tool the provider ran without asking (a CLI's own loop): judged as it starts.
        action = guard.policy.tool_action(call.tool_name)
        if action is ToolAction.DENY:
            kind = "tool_denied"
        elif action is ToolAction.ASK and not await self.request_approval(
            call.tool_call_id, call.tool_name, call.tool_input, policy=guard.tool_owner(call.tool_name, action)
        ):
            kind = "tool_not_approved"
        else:
            return
        owner = guard.tool_owner(call.tool_name, action)
        details = {"tool_name": call.tool_name, "tool_call_id": call.tool_call_id}
        await self._enforce([Violation(owner, kind, guard.policy.on_violation, details)])

    async def watch_duration(self, scope: trio.CancelScope, seconds: float) -> None:
        """Enforce ``max_duration_s``: after ``seconds``, the run is over its time budget."""
        with scope:
            await trio.sleep(seconds)
            if self._guard is not None:
                await self._enforce(self._guard.on_duration(seconds))

    async def authorize_tool(
        self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any], *, default: str = "allow"
    ) -> bool:
        """May the provider run this tool call? Providers that run tools themselves
        call this before ``tool_call_started``. The policies decide (``deny`` →
        refused with a ``policy_violation``, ``ask`` → the approval hook); where
        they say nothing, ``default`` does (from the provider's permission mode:
        ``allow``, ``ask`` or ``deny``). ``default="deny"`` refuses everything."""
        self._authorized.add(tool_call_id)
        guard = self._guard
        action = guard.policy.tool_action(tool_name) if guard is not None else None
        if default == "deny":
            await self._put(ApprovalDenied(tool_call_id, tool_name, "the provider's permission mode denies all tools"))
            return False
        if action is ToolAction.DENY and guard is not None:
            owner = guard.tool_owner(tool_name, action)
            details = {"tool_name": tool_name, "tool_call_id": tool_call_id}
            await self._put(PolicyViolation(owner, "tool_denied", "denied", details))
            return False
        if action is ToolAction.ASK or (action is None and default == "ask"):
            asker = guard.tool_owner(tool_name, action) if guard is not None and action is not None else None
            return await self.request_approval(tool_call_id, tool_name, tool_input, policy=asker)
        return True

    async def request_approval(
        self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any], *, policy: str | None = None
    ) -> bool:
        """Emit ``approval_requested``, ask the ``asm_approve_tool`` hook, emit
        the answer (``approval_granted`` / ``approval_denied``) and return it.
        With no hook answering, or none within ``approval_timeout``, the call is denied."""
        request = ApprovalRequested(tool_call_id, tool_name, dict(tool_input), policy)
        await self._put(request)
        answer: object = None
        plugins = self._manager.plugins
        timeout = self._manager.approval_timeout
        deadline = trio.move_on_after(float("inf") if timeout is None else timeout)
        with deadline:
            # firstresult by hand: an async implementation's None must pass the question on.
            for impl in reversed(plugins.hook.asm_approve_tool.get_hookimpls()) if plugins is not None else ():
                offered = {"request": request, "run": self._run}
                answer = impl.function(*(offered[name] for name in impl.argnames))
                if inspect.isawaitable(answer):
                    answer = await answer
                if answer is not None:
                    break
        if answer is True:
            await self._put(ApprovalGranted(tool_call_id, tool_name))
            return True
        if deadline.cancelled_caught:
            reason = f"no answer within {timeout:g}s"
        elif answer is False:
            reason = "denied by the approval hook"
        else:
            reason = "no approval hook answered"
        await self._put(ApprovalDenied(tool_call_id, tool_name, reason))
        return False
