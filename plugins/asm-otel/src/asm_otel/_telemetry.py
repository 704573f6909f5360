"""The hooks: sessions, runs, model turns and tool calls as spans, and the metrics.

A :class:`Telemetry` is an asm plugin object (its methods are ``@hookimpl``s);
:func:`asm_otel.instrument` registers one in a plugin registry. It keeps no
task of its own: spans start and end inside the hooks, and metric values that
change on every event (events stored, queue depth) are plain counters read by
observable instruments when the SDK collects, so the per-event cost is a dict
lookup or two.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, Final

import attrs
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from asm import hookimpl
from asm.events import (
    PAYLOADS,
    ApprovalDenied,
    ApprovalGranted,
    CostUpdated,
    ErrorOccurred,
    Event,
    EventData,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    PolicyViolation,
    RunCancelled,
    RunFailed,
    RunQueued,
    RunStarted,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.model import Run, Session
from asm.states import RunStatus, SessionStatus

__all__ = ["TRACE_CONTEXT_KEY", "Telemetry", "gen_ai_provider_name"]

#: The run metadata key holding the W3C trace context (``traceparent``, ``tracestate``)
#: of the span active where the run was created (submitted), for the task or process
#: that executes it to link to.
TRACE_CONTEXT_KEY: Final = "trace_context"

#: Instrumentation scope of every span and metric.
SCOPE: Final = "asm_otel"

#: asm provider names whose GenAI provider is one of the conventions' well-known values
#: (``gen_ai.provider.name``); any other provider is named as asm names it.
_KNOWN_PROVIDERS: Final = {
    "claude": "anthropic",
    "claude-code": "anthropic",
    "openai": "openai",
    "codex": "openai",
    "gemini": "gcp.gemini",
}

# The conventions' advice for the two GenAI histograms (gen-ai-metrics.md).
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

_W3C: Final = TraceContextTextMapPropagator()
_RUN_ERRORS: Final = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT})
_SESSION_STATUS: Final = {SessionStatus.FAILED: StatusCode.ERROR, SessionStatus.COMPLETED: StatusCode.OK}


def gen_ai_provider_name(provider: str | None) -> str:
    """``gen_ai.provider.name`` for an asm provider: the conventions' well-known value
    where there is one, else asm's own name.

    >>> gen_ai_provider_name("claude"), gen_ai_provider_name("shell")
    ('anthropic', 'shell')
    """
    if not provider:
        return "unknown"
    return _KNOWN_PROVIDERS.get(provider, provider)


def _version() -> str | None:
    try:
        return metadata.version("asm-otel")
    except metadata.PackageNotFoundError:
        return None


def _ns(event: Event, run: _Run | None) -> int:
    # Spans of turns and tool calls start and end when the provider emitted their events,
    # not when the store committed them (a batch later). An event's time is its millisecond,
    # which may begin before the run's span did: a child never starts before its parent.
    at = int(event.at.timestamp() * 1e9)
    return at if run is None or at >= run.start_ns else run.start_ns


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@attrs.define(slots=True)
class _Chat:
    """One model turn of a run: a ``chat`` span."""

    span: Span
    start_ns: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    counted: bool = False
    model: str | None = None
    text: list[str] = attrs.field(factory=list)
    message: str | None = None
    tool_calls: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.define(slots=True)
class _Tool:
    span: Span
    start_ns: int
    name: str


@attrs.define(slots=True)
class _Run:
    """What the hooks know of a run executing in this process."""

    span: Span
    context: Context
    provider: str
    asm_provider: str
    conversation: str
    start_ns: int
    request_model: str | None = None
    chat: _Chat | None = None
    turns: int = 0
    usage_seen: bool = False
    tools: dict[str, _Tool] = attrs.field(factory=dict)
    inputs: list[dict[str, Any]] = attrs.field(factory=list)
    outputs: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.define(slots=True)
class _Session:
    span: Span
    #: the span that was active where the session started (None: none was)
    parent_span_id: int | None


class Telemetry:
    """asm's sessions, runs, model turns and tool calls as OpenTelemetry spans,
    named and attributed by the GenAI semantic conventions, and its metrics.

    Register it with :func:`asm_otel.instrument` (before the runtime or manager
    is built) or enable the ``otel`` sink in config. ``tracer_provider`` and
    ``meter_provider`` default to OpenTelemetry's global ones (no-ops until the
    application configures the SDK). ``capture_content`` records prompts,
    completions and tool arguments/results (``gen_ai.input.messages``, ...)
    as stored, i.e. redacted when redaction is on.

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> telemetry = Telemetry(tracer_provider=TracerProvider())
    >>> telemetry.capture_content
    False
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        version = _version()
        tracers = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        meters = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self.capture_content = capture_content
        self._tracer: Tracer = tracers.get_tracer(SCOPE, version)
        meter: Meter = meters.get_meter(SCOPE, version)
        self._runs: dict[str, _Run] = {}
        self._sessions: dict[str, _Session] = {}
        self._stored: dict[type[EventData], int] = dict.fromkeys(PAYLOADS.values(), 0)
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._runs_started = meter.create_counter("asm.runs.started", unit="{run}", description="Runs started.")
        self._runs_ended = meter.create_counter(
            "asm.runs.ended", unit="{run}", description="Runs ended, by status (asm.run.status)."
        )
        self._cost = meter.create_counter("asm.cost", unit="USD", description="What runs cost, in US dollars.")
        meter.create_observable_counter(
            "asm.events.stored", [self._observe_stored], unit="{event}", description="Events stored, by type."
        )
        meter.create_observable_up_down_counter(
            "asm.server.queue.depth",
            [self._observe_queued],
            unit="{run}",
            description="Runs waiting in the queues of this process's SessionServers.",
        )
        meter.create_observable_up_down_counter(
            "asm.runs.active", [self._observe_active], unit="{run}", description="Runs executing in this process."
        )
        # Keyed by payload class: a class hashes in C, an enum member in Python.
        self._handlers: dict[type[EventData], Callable[[Event], None]] = {
            MessageStreamed: self._on_streamed,
            ThinkingStreamed: self._on_model_output,
            MessageReceived: self._on_received,
            MessageSent: self._on_sent,
            TokenUsageUpdated: self._on_usage,
            TurnCompleted: self._on_turn,
            ToolCallStarted: self._on_tool_started,
            ToolCallCompleted: self._on_tool_ended,
            ToolCallFailed: self._on_tool_ended,
            RunStarted: self._on_run_started,
            RunQueued: self._on_queued,
            # A run cancelled while queued ends without being executed here.
            RunCancelled: self._on_run_ended,
            RunFailed: self._on_run_ended,
            PolicyViolation: self._on_span_event,
            ApprovalGranted: self._on_span_event,
            ApprovalDenied: self._on_span_event,
            ErrorOccurred: self._on_span_event,
            CostUpdated: self._on_cost,
        }

    # -- hooks -----------------------------------------------------------------

    @hookimpl
    def asm_transform_record(self, record: Session | Run) -> Run | None:
        """Store the trace context active where a run is created in its metadata
        (``trace_context``: W3C ``traceparent``), for whoever executes it to link to."""
        if type(record) is not Run or record.status is not RunStatus.PENDING or TRACE_CONTEXT_KEY in record.metadata:
            return None
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        if not carrier:
            return None
        return attrs.evolve(record, metadata={**record.metadata, TRACE_CONTEXT_KEY: carrier})

    @hookimpl
    def asm_session_started(self, session: Session) -> None:
        """Start the session's span (a resumed session keeps the span it has)."""
        if session.id in self._sessions:
            return
        current = trace.get_current_span().get_span_context()
        span = self._tracer.start_span(
            "asm.session",
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.conversation.id": session.id,
                "gen_ai.agent.name": session.agent_id,
                "asm.session.id": session.id,
            },
        )
        self._sessions[session.id] = _Session(span, current.span_id if current.is_valid else None)

    @hookimpl
    def asm_session_ended(self, session: Session) -> None:
        """End the session's span with its status (and ``error.type`` when it failed)."""
        known = self._sessions.pop(session.id, None)
        if known is None:
            return
        span = known.span
        span.set_attribute("asm.session.status", session.status.value)
        if session.status is SessionStatus.FAILED:
            code = session.error.code if session.error is not None else "_OTHER"
            span.set_attribute("error.type", code)
            span.set_status(Status(StatusCode.ERROR, session.error.message if session.error else None))
        elif session.status in _SESSION_STATUS:
            span.set_status(Status(_SESSION_STATUS[session.status]))
        span.end()

    @hookimpl
    def asm_run_starting(self, session: Session, run: Run) -> None:
        """Start the run's ``invoke_agent`` span, in the executing task's context.

        Its parent is the session's span when the run executes where the session
        started (``run_once``, a SessionServer's worker), else the application's
        span active here (linked to the session's span). A run submitted under
        another span (stored ``trace_context``) links to that span."""
        current = trace.get_current_span().get_span_context()
        known = self._sessions.get(session.id)
        links: list[Link] = []
        if known is not None and (not current.is_valid or current.span_id == known.parent_span_id):
            parent = trace.set_span_in_context(known.span)
        else:
            parent = otel_context.get_current()
            if known is not None:
                links.append(Link(known.span.get_span_context(), {"asm.link.type": "session"}))
        submitted = run.metadata.get(TRACE_CONTEXT_KEY)
        if isinstance(submitted, Mapping):
            origin = trace.get_current_span(_W3C.extract(submitted)).get_span_context()
            if origin.is_valid and origin.span_id != current.span_id:
                links.append(Link(origin, {"asm.link.type": "submitted_from"}))
        provider = gen_ai_provider_name(run.provider)
        asm_provider = run.provider or "unknown"
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": provider,
            "gen_ai.agent.name": session.agent_id,
            "gen_ai.conversation.id": session.id,
            "asm.session.id": session.id,
            "asm.run.id": run.id,
            "asm.provider": asm_provider,
        }
        model = run.model or run.input.options.get("model")
        if isinstance(model, str) and model:
            attributes["gen_ai.request.model"] = model
        start = time.time_ns()
        span = self._tracer.start_span(
            f"invoke_agent {session.agent_id}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            start_time=start,
        )
        self._runs[run.id] = _Run(
            span,
            trace.set_span_in_context(span),
            provider,
            asm_provider,
            session.id,
            start,
            request_model=attributes.get("gen_ai.request.model"),  # type: ignore[arg-type]
        )
        self._active.add(run.id)
        self._runs_started.add(1, {"gen_ai.provider.name": provider, "asm.provider": asm_provider})

    @hookimpl
    def asm_event(self, event: Event) -> None:
        """Count the event; turns, tool calls and notable moments become spans and span events."""
        kind = type(event.data)
        self._stored[kind] += 1
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    @hookimpl
    def asm_run_finished(self, session: Session, run: Run) -> None:
        """End the run's open turn and tool spans, then its own span, with the final
        usage, model, cost and status; record the run's metrics."""
        self._queued.discard(run.id)
        self._active.discard(run.id)
        state = self._runs.pop(run.id, None)
        if state is None:
            return
        now = time.time_ns()
        error = run.error.code if run.status in _RUN_ERRORS and run.error is not None else None
        stop = run.result.stop_reason if run.result is not None else None
        if state.chat is not None:
            self._end_chat(state, now, error=error, finish=stop)
        for call_id in list(state.tools):
            tool = state.tools.pop(call_id)
            # A tool call the run's end interrupted: it did not finish.
            tool.span.set_attribute("error.type", error or run.status.value)
            tool.span.set_status(Status(StatusCode.ERROR, f"the run ended ({run.status.value}) during the call"))
            tool.span.end(end_time=now)
        span = state.span
        usage = run.usage
        attributes: dict[str, AttributeValue] = {
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "asm.run.status": run.status.value,
            "asm.run.turns": state.turns,
        }
        if usage.cache_read_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        if run.model:
            attributes["gen_ai.response.model"] = run.model
        if stop:
            attributes["gen_ai.response.finish_reasons"] = (stop,)
        if run.cost is not None:
            attributes["asm.cost.usd"] = float(run.cost.total_usd)
        if self.capture_content:
            if state.inputs:
                attributes["gen_ai.input.messages"] = _json(state.inputs)
            if state.outputs:
                attributes["gen_ai.output.messages"] = _json(state.outputs)
        if error is not None:
            attributes["error.type"] = error
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, run.error.message if run.error is not None else None))
        elif run.status is RunStatus.COMPLETED:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=now)

        metric = self._metric_attributes(state, "invoke_agent", run.model)
        if error is not None:
            metric["error.type"] = error
        self._duration.record((now - state.start_ns) / 1e9, metric)
        if not state.usage_seen and usage.total_tokens:
            # Usage only in the provider's result: counted once, for the run.
            self._record_tokens(metric, usage.input_tokens, usage.output_tokens)
        ended: dict[str, AttributeValue] = {
            "gen_ai.provider.name": state.provider,
            "asm.provider": state.asm_provider,
            "asm.run.status": run.status.value,
        }
        if error is not None:
            ended["error.type"] = error
        self._runs_ended.add(1, ended)
        if run.cost is not None and run.cost.total_usd > 0:
            cost: dict[str, AttributeValue] = {"gen_ai.provider.name": state.provider}
            if run.model:
                cost["gen_ai.response.model"] = run.model
            self._cost.add(float(run.cost.total_usd), cost)

    # -- events ------------------------------------------------------------------

    def _chat(self, state: _Run, event: Event) -> _Chat:
        chat = state.chat
        if chat is None:
            start = _ns(event, state)
            attributes: dict[str, AttributeValue] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": state.provider,
                "gen_ai.conversation.id": state.conversation,
                "asm.run.id": event.run_id or "",
            }
            if state.request_model:
                attributes["gen_ai.request.model"] = state.request_model
            name = f"chat {state.request_model}" if state.request_model else "chat"
            span = self._tracer.start_span(
                name, context=state.context, kind=SpanKind.CLIENT, attributes=attributes, start_time=start
            )
            chat = state.chat = _Chat(span, start)
            if self.capture_content and state.turns == 0 and state.inputs:
                span.set_attribute("gen_ai.input.messages", _json(state.inputs))
        return chat

    def _on_streamed(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is None:
            return
        chat = state.chat or self._chat(state, event)
        if self.capture_content:
            data = event.data
            assert isinstance(data, MessageStreamed)
            chat.text.append(data.delta)

    def _on_model_output(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is not None and state.chat is None:
            self._chat(state, event)

    def _on_received(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is None:
            return
        chat = self._chat(state, event)
        if self.capture_content:
            data = event.data
            assert isinstance(data, MessageReceived)
            chat.message = data.content

    def _on_sent(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is not None and self.capture_content:
            data = event.data
            assert isinstance(data, MessageSent)
            state.inputs.append({"role": data.role, "parts": [{"type": "text", "content": data.content}]})

    def _on_usage(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is None:
            return
        data = event.data
        assert isinstance(data, TokenUsageUpdated)
        chat = self._chat(state, event)
        chat.input_tokens += data.usage.input_tokens
        chat.output_tokens += data.usage.output_tokens
        chat.cache_read += data.usage.cache_read_tokens
        chat.cache_write += data.usage.cache_write_tokens
        chat.counted = True
        chat.model = data.model or chat.model
        state.usage_seen = True

    def _on_turn(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is None:
            return
        data = event.data
        assert isinstance(data, TurnCompleted)
        self._chat(state, event)  # a turn with nothing before its end is still a turn
        self._end_chat(state, _ns(event, state))

    def _end_chat(self, state: _Run, end_ns: int, *, error: str | None = None, finish: str | None = None) -> None:
        chat = state.chat
        assert chat is not None
        state.chat = None
        state.turns += 1
        span = chat.span
        attributes: dict[str, AttributeValue] = {}
        if chat.counted:
            attributes["gen_ai.usage.input_tokens"] = chat.input_tokens
            attributes["gen_ai.usage.output_tokens"] = chat.output_tokens
            if chat.cache_read:
                attributes["gen_ai.usage.cache_read.input_tokens"] = chat.cache_read
            if chat.cache_write:
                attributes["gen_ai.usage.cache_creation.input_tokens"] = chat.cache_write
        if chat.model:
            attributes["gen_ai.response.model"] = chat.model
        reason = "tool_call" if chat.tool_calls else finish
        if reason:
            attributes["gen_ai.response.finish_reasons"] = (reason,)
        if self.capture_content:
            text = chat.message if chat.message is not None else "".join(chat.text)
            parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
            parts.extend(chat.tool_calls)
            if parts:
                message = {"role": "assistant", "parts": parts, "finish_reason": reason or "stop"}
                attributes["gen_ai.output.messages"] = _json([message])
                state.outputs.append(message)
        if error is not None:
            attributes["error.type"] = error
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)
        span.end(end_time=end_ns)
        metric = self._metric_attributes(state, "chat", chat.model)
        if error is not None:
            metric["error.type"] = error
        self._duration.record(max(0, end_ns - chat.start_ns) / 1e9, metric)
        if chat.counted:
            self._record_tokens(metric, chat.input_tokens, chat.output_tokens)

    def _on_tool_started(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is None:
            return
        data = event.data
        assert isinstance(data, ToolCallStarted)
        start = _ns(event, state)
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": data.tool_name,
            "gen_ai.tool.call.id": data.tool_call_id,
            # The conventions give a tool call no conversation id: asm's own names say where it ran.
            "asm.session.id": state.conversation,
            "asm.run.id": event.run_id or "",
        }
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = _json(data.tool_input)
        span = self._tracer.start_span(
            f"execute_tool {data.tool_name}",
            context=state.context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=start,
        )
        state.tools[data.tool_call_id] = _Tool(span, start, data.tool_name)
        if state.chat is not None:
            # The model asked for this call during its turn.
            call: dict[str, Any] = {"type": "tool_call", "id": data.tool_call_id, "name": data.tool_name}
            if self.capture_content:
                call["arguments"] = data.tool_input
            state.chat.tool_calls.append(call)

    def _on_tool_ended(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        if state is None:
            return
        data = event.data
        assert isinstance(data, ToolCallCompleted | ToolCallFailed)
        tool = state.tools.pop(data.tool_call_id, None)
        if tool is None:
            return  # a call that never started (refused, or past max_turns): no span to end
        end = _ns(event, state)
        metric = self._metric_attributes(state, "execute_tool", None)
        if isinstance(data, ToolCallFailed):
            tool.span.set_attribute("error.type", "tool_call_failed")
            tool.span.set_status(Status(StatusCode.ERROR, data.error_message))
            metric["error.type"] = "tool_call_failed"
        else:
            if self.capture_content and data.tool_output is not None:
                tool.span.set_attribute("gen_ai.tool.call.result", _json(data.tool_output))
            tool.span.set_status(Status(StatusCode.OK))
        tool.span.end(end_time=end)
        metric["gen_ai.tool.name"] = tool.name
        self._duration.record(max(0, end - tool.start_ns) / 1e9, metric)

    def _on_run_started(self, event: Event) -> None:
        self._queued.discard(event.run_id or "")
        state = self._runs.get(event.run_id or "")
        data = event.data
        assert isinstance(data, RunStarted)
        if state is not None and data.model and not state.request_model:
            state.request_model = data.model
            state.span.set_attribute("gen_ai.request.model", data.model)

    def _on_queued(self, event: Event) -> None:
        assert isinstance(event.data, RunQueued)
        if event.run_id is not None:
            self._queued.add(event.run_id)

    def _on_run_ended(self, event: Event) -> None:
        self._queued.discard(event.run_id or "")

    def _on_cost(self, event: Event) -> None:
        state = self._runs.get(event.run_id or "")
        data = event.data
        assert isinstance(data, CostUpdated)
        if state is not None:
            state.span.set_attribute("asm.cost.usd", float(data.cost.total_usd))

    def _on_span_event(self, event: Event) -> None:
        """Policy violations, approvals and errors as events of the run's span
        (of the session's span for an event outside a run)."""
        state = self._runs.get(event.run_id or "")
        span = state.span if state is not None else None
        if span is None:
            session = self._sessions.get(event.session_id)
            span = session.span if session is not None else None
        if span is None:
            return
        data = event.data
        attributes: dict[str, AttributeValue]
        if isinstance(data, PolicyViolation):
            attributes = {
                "asm.policy.name": data.policy,
                "asm.policy.kind": data.kind,
                "asm.policy.action": data.action,
            }
            tool = data.details.get("tool_name")
            if isinstance(tool, str):
                attributes["gen_ai.tool.name"] = tool
        elif isinstance(data, ApprovalGranted | ApprovalDenied):
            attributes = {"gen_ai.tool.name": data.tool_name, "gen_ai.tool.call.id": data.tool_call_id}
        elif isinstance(data, ErrorOccurred):
            attributes = {"error.type": data.error_code}
        else:
            return  # the handler table routes only the types above here
        span.add_event(f"asm.{event.type.value}", attributes, timestamp=_ns(event, state))

    # -- metrics -----------------------------------------------------------------

    def _metric_attributes(self, state: _Run, operation: str, model: str | None) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": state.provider,
        }
        if state.request_model:
            attributes["gen_ai.request.model"] = state.request_model
        if model:
            attributes["gen_ai.response.model"] = model
        return attributes

    def _record_tokens(self, attributes: Mapping[str, AttributeValue], input_tokens: int, output_tokens: int) -> None:
        base = {key: value for key, value in attributes.items() if key != "error.type"}
        self._token_usage.record(input_tokens, {**base, "gen_ai.token.type": "input"})
        self._token_usage.record(output_tokens, {**base, "gen_ai.token.type": "output"})

    def _observe_stored(self, options: CallbackOptions) -> Iterable[Observation]:
        counts = self._stored.items()
        return [Observation(count, {"asm.event.type": kind.type.value}) for kind, count in counts if count]

    def _observe_queued(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(len(self._queued))]

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(len(self._active))]

    # -- lifetime ----------------------------------------------------------------

    def end_open_spans(self) -> None:
        """End the spans of sessions and runs still open (at shutdown), so that they
        are exported; each says it had not ended (``asm.session.status`` / ``asm.run.status``)."""
        now = time.time_ns()
        for state in self._runs.values():
            if state.chat is not None:
                state.chat.span.end(end_time=now)
            for tool in state.tools.values():
                tool.span.end(end_time=now)
            state.span.set_attribute("asm.run.status", RunStatus.RUNNING.value)
            state.span.end(end_time=now)
        self._runs.clear()
        for session in self._sessions.values():
            session.span.set_attribute("asm.session.status", SessionStatus.ACTIVE.value)
            session.span.end(end_time=now)
        self._sessions.clear()

    def statistics(self) -> TelemetryStatistics:
        """Sessions and runs with open spans, and events counted so far.

        >>> Telemetry().statistics().events_stored
        0
        """
        return TelemetryStatistics(
            open_sessions=len(self._sessions),
            open_runs=len(self._runs),
            events_stored=sum(self._stored.values()),
            queued_runs=len(self._queued),
        )


@attrs.frozen
class TelemetryStatistics:
    """A snapshot of :meth:`Telemetry.statistics`."""

    open_sessions: int
    open_runs: int
    events_stored: int
    queued_runs: int
