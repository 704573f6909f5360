"""asm-otel: OpenTelemetry traces and metrics of asm's sessions, runs, model turns and tool calls.

Spans and metrics follow the OpenTelemetry GenAI semantic conventions: a session
is an ``asm.session`` span, each run an ``invoke_agent {agent}`` span in it, each
model turn a ``chat {model}`` span and each tool call an ``execute_tool {tool}``
span in the run; ``gen_ai.client.token.usage`` and
``gen_ai.client.operation.duration`` histograms, and asm's own counters.

Nothing is recorded unless it is turned on. An application with its own
OpenTelemetry set-up instruments a registry before building its runtime::

    registry = asm.load_plugins()
    asm_otel.instrument(registry, tracer_provider=provider, meter_provider=meters)
    async with asm.open_runtime(registry=registry) as rt:
        with tracer.start_as_current_span("handle request"):
            await rt.run_once("hi")   # its spans are children of "handle request"

and ``asm run`` (or any runtime built from config) exports with the
OpenTelemetry environment variables when its config has a ``[sinks.otel]``
table::

    [sinks.otel]
    capture_content = false     # prompts and completions on spans (redacted as stored)

    $ OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 asm run "hello"

See docs/telemetry.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asm import AsmError, hookimpl
from asm.hookspecs import Register
from asm.plugins import PluginRegistry, lazy_attributes

if TYPE_CHECKING:
    from asm_otel._setup import OtelOptions, OtelSink, instrument, uninstrument
    from asm_otel._telemetry import TRACE_CONTEXT_KEY, Telemetry, TelemetryStatistics, gen_ai_provider_name

__all__ = [
    "TRACE_CONTEXT_KEY",
    "OtelOptions",
    "OtelSink",
    "Telemetry",
    "TelemetryStatistics",
    "gen_ai_provider_name",
    "instrument",
    "uninstrument",
]

_HOME = {
    "OtelOptions": "_setup",
    "OtelSink": "_setup",
    "instrument": "_setup",
    "uninstrument": "_setup",
    "TRACE_CONTEXT_KEY": "_telemetry",
    "Telemetry": "_telemetry",
    "TelemetryStatistics": "_telemetry",
    "gen_ai_provider_name": "_telemetry",
}


__getattr__ = lazy_attributes(__name__, _HOME)


def _otel_sink(config: dict[str, Any], *, registry: PluginRegistry | None = None) -> Any:
    from asm_otel._setup import create_sink

    if registry is None:
        raise AsmError("invalid_config", "the otel sink is built by a runtime, from its plugin registry")
    return create_sink(config, registry=registry)


@hookimpl
def asm_register_sinks(register: Register) -> None:
    """Register the ``otel`` sink: a ``[sinks.otel]`` table turns telemetry on for a runtime."""
    register("otel", _otel_sink)
