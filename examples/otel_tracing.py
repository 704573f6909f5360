"""OpenTelemetry traces and metrics of asm runs (asm-otel), offline.

The application owns its OpenTelemetry set-up (here the SDK with in-memory
exporters; in production an OTLP exporter) and instruments asm's plugin registry
with it. A run started inside the application's span is part of its trace; a run
submitted to a SessionServer links to the span it was submitted from.
See docs/telemetry.md.
"""

from __future__ import annotations

import asm_otel
import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import asm
from asm.events import TokenUsageUpdated, ToolCallCompleted, ToolCallStarted, TurnCompleted
from asm.model import TokenUsage

SCRIPT = [
    "Let me read it. ",
    ToolCallStarted("call_1", "read_file", {"path": "app.py"}),
    TokenUsageUpdated(TokenUsage(input_tokens=120, output_tokens=18)),
    TurnCompleted(1),
    ToolCallCompleted("call_1", "read_file", "print('hello')"),
    "It prints hello.",
    TokenUsageUpdated(TokenUsage(input_tokens=160, output_tokens=6)),
    TurnCompleted(2),
]


def tree(spans: list[ReadableSpan]) -> list[str]:
    """The spans as an indented tree, children in start order."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            links = f"  (linked to {len(span.links)} span)" if span.links else ""
            lines.append(f"{'  ' * depth}{span.name}{links}")
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


async def main() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer = tracer_provider.get_tracer("my-app")

    registry = asm.load_plugins()
    asm_otel.instrument(registry, tracer_provider=tracer_provider, meter_provider=meter_provider)

    async with asm.open_runtime(store="memory", registry=registry) as rt:
        with tracer.start_as_current_span("POST /ask"):
            run = await rt.run_once("what does app.py print?", provider=asm.ScriptedProvider(SCRIPT, model="m-1"))
        print("run:", run.status.value, run.output)

        async with asm.open_session_server(rt, "echo", agent_id="worker") as server:
            with tracer.start_as_current_span("POST /jobs"):
                run_id = await server.submit("a background job")
            await server.wait(run_id)
        await rt.manager.complete_session(server.session_id)

    spans = list(exporter.get_finished_spans())
    print("\n".join(tree(spans)))
    agent = next(s for s in spans if s.name == "invoke_agent scripted")
    attributes = agent.attributes or {}
    print(
        "invoke_agent:",
        {k: attributes[k] for k in ("gen_ai.provider.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")},
    )
    assert attributes["gen_ai.usage.input_tokens"] == 280
    assert sum(s.name.split()[0] == "chat" for s in spans) == 3  # two turns here, one for the echo job
    job = next(s for s in spans if s.name == "invoke_agent worker")
    submitted = next(s for s in spans if s.name == "POST /jobs")
    assert job.links and job.links[0].context.span_id == submitted.context.span_id

    data = reader.get_metrics_data()
    assert data is not None
    names = sorted({m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics})
    print("metrics:", ", ".join(names))
    assert "gen_ai.client.token.usage" in names and "gen_ai.client.operation.duration" in names


trio.run(main)
