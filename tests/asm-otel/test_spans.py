"""The span tree of sessions and runs, its attributes (each name checked against the
OpenTelemetry GenAI semantic conventions), parents, links and captured content."""

from __future__ import annotations

import json
from typing import Any

import asm_otel
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import asm
from asm.events import (
    CostUpdated,
    MessageReceived,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.model import Cost, TokenUsage
from asm.policy import Limits, Policy
from asm.providers.scripted import Fail

# -- the conventions ---------------------------------------------------------------
# Attribute names each span may carry, from the GenAI semantic conventions
# (open-telemetry/semantic-conventions, docs/gen-ai: gen-ai-spans.md "Inference" and
# "Execute tool span", gen-ai-agent-spans.md "Invoke agent internal span"), and the
# ones asm adds under its own namespace.

INFERENCE = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "error.type",
    "gen_ai.conversation.id",
    "gen_ai.output.type",
    "gen_ai.request.choice.count",
    "gen_ai.request.model",
    "gen_ai.request.seed",
    "gen_ai.request.stream",
    "server.port",
    "gen_ai.request.frequency_penalty",
    "gen_ai.request.max_tokens",
    "gen_ai.request.presence_penalty",
    "gen_ai.request.stop_sequences",
    "gen_ai.request.temperature",
    "gen_ai.request.top_k",
    "gen_ai.request.top_p",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "server.address",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
}
INVOKE_AGENT = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "error.type",
    "gen_ai.agent.description",
    "gen_ai.agent.id",
    "gen_ai.agent.name",
    "gen_ai.agent.version",
    "gen_ai.conversation.id",
    "gen_ai.data_source.id",
    "gen_ai.output.type",
    "gen_ai.request.choice.count",
    "gen_ai.request.model",
    "gen_ai.request.seed",
    "server.port",
    "gen_ai.request.frequency_penalty",
    "gen_ai.request.max_tokens",
    "gen_ai.request.presence_penalty",
    "gen_ai.request.stop_sequences",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "server.address",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
}
EXECUTE_TOOL = {
    "gen_ai.operation.name",
    "gen_ai.tool.name",
    "error.type",
    "gen_ai.tool.call.id",
    "gen_ai.tool.description",
    "gen_ai.tool.type",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}
#: Attributes the conventions define and asm uses outside those spans (a session is a conversation).
SESSION = {"gen_ai.conversation.id", "gen_ai.agent.name", "error.type"}
#: Required by the conventions on each kind of span.
REQUIRED = {
    "chat": {"gen_ai.operation.name", "gen_ai.provider.name"},
    "invoke_agent": {"gen_ai.operation.name", "gen_ai.provider.name"},
    "execute_tool": {"gen_ai.operation.name", "gen_ai.tool.name"},
}
#: asm's own attributes, in its own namespace.
ASM = {
    "asm.session.id",
    "asm.session.status",
    "asm.run.id",
    "asm.run.status",
    "asm.run.turns",
    "asm.provider",
    "asm.cost.usd",
}
#: Attributes of span events and links.
EVENT_ATTRIBUTES = {
    "asm.policy.name",
    "asm.policy.kind",
    "asm.policy.action",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "error.type",
}
LINK_ATTRIBUTES = {"asm.link.type"}
WELL_KNOWN_OPERATIONS = {"chat", "invoke_agent", "execute_tool"}


def check_conventions(spans: list[ReadableSpan]) -> None:
    """Every attribute name of asm's spans is the conventions' (for that kind of span) or asm's own."""
    for span in spans:
        if span.instrumentation_scope is None or span.instrumentation_scope.name != "asm_otel":
            continue
        names = set(span.attributes or {})
        operation = (span.attributes or {}).get("gen_ai.operation.name")
        allowed = {
            "chat": INFERENCE,
            "invoke_agent": INVOKE_AGENT,
            "execute_tool": EXECUTE_TOOL,
            None: SESSION,
        }[operation]  # type: ignore[index]
        assert names - allowed - ASM == set(), f"{span.name}: {sorted(names - allowed - ASM)}"
        if operation is not None:
            assert operation in WELL_KNOWN_OPERATIONS
            assert REQUIRED[operation] <= names, span.name  # type: ignore[index]
            assert not any(n.startswith("gen_ai.") and n not in allowed for n in names)
        for event in span.events:
            assert event.name.startswith("asm."), event.name
            assert set(event.attributes or {}) <= EVENT_ATTRIBUTES, event.name
        for link in span.links:
            assert set(link.attributes or {}) <= LINK_ATTRIBUTES


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


TOOL_SCRIPT = [
    "Let me look. ",
    ToolCallStarted("call_1", "read_file", {"path": "a.py"}),
    TokenUsageUpdated(TokenUsage(input_tokens=100, output_tokens=20, cache_read_tokens=40), "model-x-2025"),
    TurnCompleted(1),
    ToolCallCompleted("call_1", "read_file", "print('a')"),
    "It prints a.",
    MessageReceived("It prints a."),
    TokenUsageUpdated(TokenUsage(input_tokens=130, output_tokens=8), "model-x-2025"),
    CostUpdated(Cost(total_usd="0.0125")),
    TurnCompleted(2),
]


async def test_a_run_is_a_session_span_with_the_run_and_its_turns_and_tool_calls_in_it(otel: Any) -> None:
    manager = asm.SessionManager(
        asm.InMemorySessionStore(), provider=asm.ScriptedProvider(TOOL_SCRIPT, model="model-x"), plugins=otel.registry
    )
    with otel.tracer.start_as_current_span("handle request") as app:
        run = await manager.run_once("what does a.py print?", agent_id="helper")
    assert run.status is asm.RunStatus.COMPLETED
    spans = otel.spans()
    check_conventions(spans)
    named = by_name(spans)
    assert sorted(named) == sorted(
        ["handle request", "asm.session", "invoke_agent helper", "chat model-x", "execute_tool read_file"]
    )
    session, agent = named["asm.session"][0], named["invoke_agent helper"][0]
    turns, tool = named["chat model-x"], named["execute_tool read_file"][0]
    # app span > session > run > (turn 1, tool call, turn 2): one trace
    assert parent_of(session) == app.get_span_context().span_id
    assert parent_of(agent) == session.context.span_id
    assert [parent_of(s) for s in [*turns, tool]] == [agent.context.span_id] * 3
    assert len({s.context.trace_id for s in spans}) == 1
    assert [s.kind for s in (session, agent, tool)] == [SpanKind.INTERNAL] * 3
    assert {s.kind for s in turns} == {SpanKind.CLIENT}

    assert session.attributes == {
        "gen_ai.conversation.id": run.session_id,
        "gen_ai.agent.name": "helper",
        "asm.session.id": run.session_id,
        "asm.session.status": "completed",
    }
    assert dict(agent.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "scripted",
        "gen_ai.agent.name": "helper",
        "gen_ai.conversation.id": run.session_id,
        "gen_ai.request.model": "model-x",
        "gen_ai.response.model": "model-x",  # the run's model, as asm accounts it (its result's)
        "gen_ai.response.finish_reasons": ("end_turn",),
        "gen_ai.usage.input_tokens": 230,
        "gen_ai.usage.output_tokens": 28,
        "gen_ai.usage.cache_read.input_tokens": 40,
        "asm.session.id": run.session_id,
        "asm.run.id": run.id,
        "asm.provider": "scripted",
        "asm.run.status": "completed",
        "asm.run.turns": 2,
        "asm.cost.usd": 0.0125,
    }
    first, second = sorted(turns, key=lambda s: s.start_time or 0)
    assert first.attributes is not None and second.attributes is not None
    assert (first.attributes["gen_ai.usage.input_tokens"], first.attributes["gen_ai.usage.output_tokens"]) == (100, 20)
    assert first.attributes["gen_ai.usage.cache_read.input_tokens"] == 40
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert (second.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.output_tokens"]) == (130, 8)
    assert second.attributes["gen_ai.response.model"] == "model-x-2025"
    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "read_file",
        "gen_ai.tool.call.id": "call_1",
        "asm.session.id": run.session_id,
        "asm.run.id": run.id,
    }
    # Timing: each child inside its parent; the tool ran between the two turns' ends.
    for child, parent in [(agent, session), (first, agent), (tool, agent), (second, agent)]:
        assert parent.start_time <= child.start_time <= child.end_time <= parent.end_time  # type: ignore[operator]
    assert first.end_time <= tool.end_time <= second.end_time  # type: ignore[operator]
    assert {s.status.status_code for s in (session, agent, tool)} == {StatusCode.OK}
    # Content is off by default.
    assert not any(k.endswith(("messages", "arguments", "result")) for s in spans for k in (s.attributes or {}))


async def test_a_failed_run_sets_error_type_on_its_spans(otel: Any) -> None:
    error = asm.AsmError("provider_rate_limited", "slow down")
    script = ["partial ", ToolCallStarted("c1", "bash", {"command": "ls"}), Fail(error)]
    manager = asm.SessionManager(
        asm.InMemorySessionStore(), provider=asm.ScriptedProvider(script), plugins=otel.registry
    )
    run = await manager.run_once("go")
    assert run.status is asm.RunStatus.FAILED
    spans = otel.spans()
    check_conventions(spans)
    named = by_name(spans)
    for name in ("asm.session", "invoke_agent scripted", "chat scripted", "execute_tool bash"):
        span = named[name][0]
        assert span.status.status_code is StatusCode.ERROR, name
        assert (span.attributes or {})["error.type"] == "provider_rate_limited", name
    assert (named["invoke_agent scripted"][0].attributes or {})["asm.run.status"] == "failed"


async def test_a_failed_tool_call_and_a_policy_violation(otel: Any) -> None:
    script = [
        ToolCallStarted("c1", "bash", {"command": "false"}),
        ToolCallFailed("c1", "bash", "exit 1"),
        TokenUsageUpdated(TokenUsage(input_tokens=10, output_tokens=500)),
        "more",
    ]
    policy = Policy("budget", Limits(max_output_tokens=100))
    manager = asm.SessionManager(
        asm.InMemorySessionStore(), provider=asm.ScriptedProvider(script), plugins=otel.registry, policies=[policy]
    )
    run = await manager.run_once("go")
    assert run.status is asm.RunStatus.CANCELLED
    spans = otel.spans()
    check_conventions(spans)
    tool = next(s for s in spans if s.name == "execute_tool bash")
    assert tool.status.status_code is StatusCode.ERROR and tool.status.description == "exit 1"
    assert (tool.attributes or {})["error.type"] == "tool_call_failed"
    agent = next(s for s in spans if s.name == "invoke_agent scripted")
    violations = [e for e in agent.events if e.name == "asm.policy_violation"]
    assert [dict(e.attributes or {}) for e in violations] == [
        {"asm.policy.name": "budget", "asm.policy.kind": "budget_exceeded", "asm.policy.action": "cancel"}
    ]
    # Cancelled by a policy is not an error of the run: its status says how it ended.
    assert agent.status.status_code is StatusCode.UNSET
    assert (agent.attributes or {})["asm.run.status"] == "cancelled"


async def test_a_run_executed_under_another_application_span_is_its_child_and_links_the_session(
    otel: Any,
) -> None:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=asm.EchoProvider(), plugins=otel.registry)
    with otel.tracer.start_as_current_span("open chat"):
        session = await manager.start_session(agent_id="support")
        await manager.activate_session(session.id)
    with otel.tracer.start_as_current_span("second message") as request:
        run = await manager.start_run(session.id, "hi again")
        await manager.execute_run(run.id)
    await manager.complete_session(session.id)
    spans = otel.spans()
    check_conventions(spans)
    agent = otel.span("invoke_agent support")
    session_span = otel.span("asm.session")
    assert parent_of(agent) == request.get_span_context().span_id
    assert [(link.context.span_id, dict(link.attributes or {})) for link in agent.links] == [
        (session_span.context.span_id, {"asm.link.type": "session"})
    ]


async def test_a_run_with_no_application_span_is_in_its_sessions_trace(otel: Any) -> None:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=asm.EchoProvider(), plugins=otel.registry)
    run = await manager.run_once("hello")
    agent, session = otel.span("invoke_agent echo"), otel.span("asm.session")
    assert session.parent is None
    assert parent_of(agent) == session.context.span_id
    assert agent.links == () or list(agent.links) == []
    stored = await manager.store.get_run(run.id)
    assert asm_otel.TRACE_CONTEXT_KEY not in stored.metadata  # no span was active: nothing to link to


async def test_a_run_submitted_to_a_session_server_links_to_the_submitting_span(otel: Any) -> None:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=asm.EchoProvider(), plugins=otel.registry)
    async with asm.open_session_server(manager, agent_id="worker") as server:
        with otel.tracer.start_as_current_span("enqueue") as submitter:
            run_id = await server.submit("hello from a request")
        run = await server.wait(run_id, timeout=30)
    await manager.complete_session(server.session_id)  # a server leaves its session open
    assert run.status is asm.RunStatus.COMPLETED
    stored = await manager.store.get_run(run_id)
    traceparent = stored.metadata[asm_otel.TRACE_CONTEXT_KEY]["traceparent"]
    context = submitter.get_span_context()
    assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    spans = otel.spans()
    check_conventions(spans)
    agent = otel.span("invoke_agent worker")
    # Executed by the server's worker task: in the session's trace, linked to where it was submitted.
    assert parent_of(agent) == otel.span("asm.session").context.span_id
    assert [(link.context.span_id, dict(link.attributes or {})) for link in agent.links] == [
        (context.span_id, {"asm.link.type": "submitted_from"})
    ]


async def test_a_run_executed_in_another_process_links_through_its_stored_trace_context(
    otel: Any, otel_factory: Any
) -> None:
    # One store, two managers with their own telemetry: the submitter's, and a worker's
    # (another process's, as a Celery worker would be) that has never seen the session.
    store = asm.InMemorySessionStore()
    submitter = asm.SessionManager(store, provider=asm.EchoProvider(), plugins=otel.registry)
    other = otel_factory()
    worker = asm.SessionManager(store, provider=asm.EchoProvider(), plugins=other.registry)
    session = await submitter.start_session(agent_id="remote")
    await submitter.activate_session(session.id)
    with otel.tracer.start_as_current_span("submit") as span:
        run = await submitter.start_run(session.id, "do it elsewhere")
    await worker.execute_run(run.id)
    agent = other.span("invoke_agent remote")
    assert agent.parent is None  # nothing active in the worker
    assert [link.context.span_id for link in agent.links] == [span.get_span_context().span_id]
    assert agent.links[0].context.trace_id == span.get_span_context().trace_id


async def test_content_is_captured_only_when_asked_and_as_stored(otel_content: Any) -> None:
    secret = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 4
    script = [
        "The key is ",
        secret,
        ToolCallStarted("c1", "read_file", {"path": "a.py", "token": secret}),
        TurnCompleted(1),
        ToolCallCompleted("c1", "read_file", {"text": "print(1)"}),
    ]
    async with asm.open_runtime(store="memory", registry=otel_content.registry) as rt:
        run = await rt.run_once(f"use {secret}", provider=asm.ScriptedProvider(script))
    assert run.status is asm.RunStatus.COMPLETED
    spans = otel_content.spans()
    check_conventions(spans)
    everything = json.dumps([dict(s.attributes or {}) for s in spans])
    assert secret not in everything and "sk-ant-api03-A1b2" not in everything
    chat = otel_content.span("chat scripted")
    inputs = json.loads((chat.attributes or {})["gen_ai.input.messages"])
    assert inputs[0]["role"] == "user" and inputs[0]["parts"][0]["type"] == "text"
    assert inputs[0]["parts"][0]["content"].startswith("use ")
    outputs = json.loads((chat.attributes or {})["gen_ai.output.messages"])
    assert outputs[0]["role"] == "assistant" and outputs[0]["finish_reason"] == "tool_call"
    assert [p["type"] for p in outputs[0]["parts"]] == ["text", "tool_call"]
    assert outputs[0]["parts"][0]["content"].startswith("The key is ")
    tool = otel_content.span("execute_tool read_file")
    assert json.loads((tool.attributes or {})["gen_ai.tool.call.arguments"])["path"] == "a.py"
    assert json.loads((tool.attributes or {})["gen_ai.tool.call.result"]) == {"text": "print(1)"}


@pytest.mark.parametrize(("provider", "expected"), [("claude", "anthropic"), ("codex", "openai"), ("shell", "shell")])
def test_provider_names_follow_the_conventions_well_known_values(provider: str, expected: str) -> None:
    assert asm_otel.gen_ai_provider_name(provider) == expected


async def test_instrumenting_again_replaces_and_uninstrument_removes(otel: Any) -> None:
    again = asm_otel.instrument(otel.registry, tracer_provider=otel.tracer_provider)
    assert again is not otel.telemetry
    assert otel.registry.manager.get_plugin("asm_otel.telemetry") is again
    assert asm_otel.uninstrument(otel.registry) is again
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=asm.EchoProvider(), plugins=otel.registry)
    await manager.run_once("not traced")
    assert otel.spans() == []
    await trio.lowlevel.checkpoint()
