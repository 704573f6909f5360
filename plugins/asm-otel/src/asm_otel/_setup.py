"""Turning telemetry on: for an application's own providers (:func:`instrument`), or
from config and the OpenTelemetry environment variables (the ``otel`` sink).

The exporters are configured the OpenTelemetry way: ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` (``otlp``, the default; ``console``; ``none``),
``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the ``_TRACES_`` / ``_METRICS_`` variants,
headers, timeout, compression, which the OTLP exporters read themselves),
``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``; ``grpc`` with the gRPC
exporter installed), ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_BSP_*`` and ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_SDK_DISABLED``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import trio
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.trace import TracerProvider

from asm import AsmError, Event, parse_options
from asm.config import typo_of
from asm.plugins import PluginRegistry
from asm.redaction import mask_url
from asm_otel._telemetry import Telemetry

__all__ = ["OtelOptions", "OtelSink", "create_sink", "instrument", "uninstrument"]

#: The name the telemetry plugin object is registered under in a registry's plugin manager.
PLUGIN_NAME: Final = "asm_otel.telemetry"

_LOG: Final = logging.getLogger("asm.otel")
_EXPORTERS: Final = ("otlp", "console", "none")
_PROTOCOLS: Final = ("http/protobuf", "grpc")
#: The OTLP exporters' own loggers: each failed export is an error (and each retry a
#: warning) there; asm-otel says it once instead (see _Guard).
_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)


@attrs.frozen
class OtelOptions:
    """The ``[sinks.otel]`` table: a runtime exports traces and metrics when it is present.

    Exporters, endpoint and resource come from the ``OTEL_*`` variables.
    """

    #: record prompts, completions and tool arguments/results on the spans (as stored: redacted)
    capture_content: bool = False
    #: ``service.name`` unless ``OTEL_SERVICE_NAME`` (or ``OTEL_RESOURCE_ATTRIBUTES``) names one
    service_name: str = "asm"
    traces: bool = True
    metrics: bool = True
    #: seconds the runtime's close waits for the last spans and metrics to be exported
    shutdown_timeout: float = 5.0


def parse_otel_options(config: Mapping[str, Any]) -> OtelOptions:
    """Parse the ``[sinks.otel]`` table; an unknown key is ``invalid_config`` with a did-you-mean.

    >>> parse_otel_options({"capture_content": True}).capture_content
    True
    """
    known = [field.name for field in attrs.fields(OtelOptions)]
    for key in config:
        if key not in known:
            close = typo_of(key, known)
            hint = f"did you mean {close!r}? " if close else ""
            raise AsmError(
                "invalid_config",
                f"invalid otel sink config: unknown option {key!r}; {hint}valid options: {', '.join(known)}",
                details={"unknown": [key], "valid": known, **({"did_you_mean": close} if close else {})},
            )
    options = parse_options(OtelOptions, config, "otel sink")
    if not options.shutdown_timeout > 0:
        raise AsmError(
            "invalid_config",
            f"invalid otel sink config: shutdown_timeout must be a positive number of seconds, "
            f"not {options.shutdown_timeout!r}",
        )
    return options


def instrument(
    registry: PluginRegistry,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: Any | None = None,
    capture_content: bool = False,
) -> Telemetry:
    """Trace and measure every session and run of managers built from ``registry``
    (call it before ``open_runtime(registry=...)`` or ``SessionManager(..., plugins=registry)``).

    The providers default to OpenTelemetry's global ones, i.e. what the application
    configured. Instrumenting a registry again replaces the previous telemetry.

    >>> import asm
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> registry = asm.load_plugins()
    >>> telemetry = instrument(registry, tracer_provider=TracerProvider())
    >>> uninstrument(registry) is telemetry
    True
    """
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider, capture_content=capture_content
    )
    uninstrument(registry)
    registry.manager.register(telemetry, name=PLUGIN_NAME)
    return telemetry


def uninstrument(registry: PluginRegistry) -> Telemetry | None:
    """Remove the telemetry :func:`instrument` registered (ending its open spans); return it."""
    previous = registry.manager.get_plugin(PLUGIN_NAME)
    if previous is None:
        return None
    registry.manager.unregister(previous, name=PLUGIN_NAME)
    assert isinstance(previous, Telemetry)
    previous.end_open_spans()
    return previous


class OtelSink:
    """The ``otel`` sink: it enables the telemetry of the runtime it is configured
    in (``[sinks.otel]``), and on the runtime's close ends what is still open and
    exports the last spans and metrics (within ``shutdown_timeout``). It writes nothing itself."""

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        tracer_provider: SdkTracerProvider | None = None,
        meter_provider: SdkMeterProvider | None = None,
        guards: Sequence[_Guard] = (),
        health: _Health | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.telemetry = telemetry
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._guards = list(guards)
        self._health = health or _Health()
        self._shutdown_timeout = shutdown_timeout
        self._closed = False

    async def write(self, text: str, event: Event | None) -> None:
        """Nothing: the telemetry sees every event through the ``asm_event`` hook."""

    async def aclose(self) -> None:
        """End open spans, export what is left (bounded), shut the providers down."""
        if self._closed:
            return
        self._closed = True
        self.telemetry.end_open_spans()
        await trio.to_thread.run_sync(self._shutdown)

    @property
    def export_failures(self) -> int:
        """Exports that failed so far (each said once per outage, as a warning of ``asm.otel``)."""
        return self._health.failures

    def _shutdown(self) -> None:
        millis = int(self._shutdown_timeout * 1000)
        if self.tracer_provider is not None:
            # The SDK's force_flush does not honour its timeout (it exports in the calling
            # thread, through the exporter's retries): flush in a thread of our own, and
            # when it takes too long, stop the exporters' retries, which ends it. What
            # could not be exported in time is dropped.
            flushed = threading.Event()
            provider = self.tracer_provider

            def flush() -> None:
                try:
                    provider.force_flush(millis)
                finally:
                    flushed.set()

            threading.Thread(target=flush, name="asm-otel flush", daemon=True).start()
            if not flushed.wait(self._shutdown_timeout):
                for guard in self._guards:
                    if guard.what == "spans":
                        guard.abandon()
                flushed.wait(self._shutdown_timeout)
            provider.shutdown()
        if self.meter_provider is not None:
            # Bounded by itself: the last collection waits at most ``millis``, then the
            # exporters are shut down (our guards abandon what is still retrying).
            self.meter_provider.shutdown(timeout_millis=millis)


def create_sink(config: dict[str, Any], *, registry: PluginRegistry) -> OtelSink:
    """Factory of the ``otel`` sink: build the providers from the ``OTEL_*`` variables
    and instrument ``registry`` with them."""
    options = parse_otel_options(config)
    return open_from_env(registry, options, os.environ)


def open_from_env(registry: PluginRegistry, options: OtelOptions, env: Mapping[str, str]) -> OtelSink:
    """Instrument ``registry`` with providers built from ``env`` (the ``OTEL_*`` variables)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        telemetry = instrument(registry, tracer_provider=_noop_tracers(), meter_provider=_noop_meters())
        return OtelSink(telemetry, shutdown_timeout=options.shutdown_timeout)
    detected = OTELResourceDetector().detect()
    resource = Resource.create({} if SERVICE_NAME in detected.attributes else {SERVICE_NAME: options.service_name})
    guards: list[_Guard] = []
    health = _Health()
    tracer_provider = None
    if options.traces:
        tracer_provider = SdkTracerProvider(resource=resource)
        for exporter in _span_exporters(env, guards, health):
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = None
    if options.metrics:
        readers: list[MetricReader] = [PeriodicExportingMetricReader(e) for e in _metric_exporters(env, guards, health)]
        meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers)
    telemetry = instrument(
        registry,
        tracer_provider=tracer_provider if tracer_provider is not None else _noop_tracers(),
        meter_provider=meter_provider if meter_provider is not None else _noop_meters(),
        capture_content=options.capture_content,
    )
    return OtelSink(
        telemetry,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        guards=guards,
        health=health,
        shutdown_timeout=options.shutdown_timeout,
    )


def _noop_tracers() -> TracerProvider:
    from opentelemetry.trace import NoOpTracerProvider

    return NoOpTracerProvider()


def _noop_meters() -> Any:
    from opentelemetry.metrics import NoOpMeterProvider

    return NoOpMeterProvider()


def _chosen(env: Mapping[str, str], variable: str) -> list[str]:
    names = [name.strip() for name in env.get(variable, "otlp").split(",") if name.strip()]
    for name in names:
        if name not in _EXPORTERS:
            close = typo_of(name, _EXPORTERS)
            hint = f"; did you mean {close!r}?" if close else ""
            raise AsmError(
                "invalid_config",
                f"{variable}={env[variable]!r} names exporter {name!r}, which asm-otel does not build{hint} "
                f"(supported: {', '.join(_EXPORTERS)}); or pass your own providers to asm_otel.instrument()",
                details={"variable": variable, "value": name},
            )
    return [] if "none" in names else names


def _protocol(env: Mapping[str, str], signal: str) -> str:
    variable = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    if variable not in env:
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = env.get(variable, "http/protobuf").strip()
    if protocol not in _PROTOCOLS:
        raise AsmError(
            "invalid_config",
            f"{variable}={protocol!r} is not a protocol asm-otel can export with; use http/protobuf "
            "(or grpc, with opentelemetry-exporter-otlp-proto-grpc installed)",
            details={"variable": variable, "value": protocol},
        )
    return protocol


def _grpc_missing(exc: ImportError) -> AsmError:
    return AsmError(
        "invalid_config",
        f"OTLP over grpc needs the gRPC exporter ({exc.name} is not installed): "
        "pip install opentelemetry-exporter-otlp-proto-grpc, or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
    )


def _span_exporters(env: Mapping[str, str], guards: list[_Guard], health: _Health) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _chosen(env, "OTEL_TRACES_EXPORTER"):
        if name == "console":
            exporters.append(ConsoleSpanExporter())
            continue
        inner: SpanExporter
        if _protocol(env, "TRACES") == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                    OTLPSpanExporter as GrpcSpanExporter,
                )
            except ImportError as exc:
                raise _grpc_missing(exc) from None
            inner = GrpcSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            inner = OTLPSpanExporter()
        guarded = GuardedSpanExporter(inner, _Guard(inner, "spans", _endpoint(env, "TRACES", "v1/traces"), health))
        guards.append(guarded.guard)
        exporters.append(guarded)
    return exporters


def _metric_exporters(env: Mapping[str, str], guards: list[_Guard], health: _Health) -> list[MetricExporter]:
    exporters: list[MetricExporter] = []
    for name in _chosen(env, "OTEL_METRICS_EXPORTER"):
        if name == "console":
            exporters.append(ConsoleMetricExporter())
            continue
        inner: MetricExporter
        if _protocol(env, "METRICS") == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found]
                    OTLPMetricExporter as GrpcMetricExporter,
                )
            except ImportError as exc:
                raise _grpc_missing(exc) from None
            inner = GrpcMetricExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            inner = OTLPMetricExporter()
        guarded = GuardedMetricExporter(
            inner, _Guard(inner, "metrics", _endpoint(env, "METRICS", "v1/metrics"), health)
        )
        guards.append(guarded.guard)
        exporters.append(guarded)
    return exporters


def _endpoint(env: Mapping[str, str], signal: str, path: str) -> str:
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    return f"{base.rstrip('/')}/{path}"


# -- failed exports: said once, never in the run's way ----------------------------

_exporting = threading.local()


class _QuietWhileGuarded(logging.Filter):
    """Drops the OTLP exporters' own log records from inside a guarded export:
    the guard says once what they would say on every batch and retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_exporting, "active", False)


_QUIET: Final = _QuietWhileGuarded()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)


class _Health:
    """Whether the exports of one runtime's telemetry are failing: the first failure of
    an outage logs one warning (``asm.otel``), whatever the signal; an export that
    succeeds again ends the outage."""

    def __init__(self) -> None:
        self.down = False
        self.failures = 0
        self.dropped = 0
        self.lock = threading.Lock()


class _Guard:
    """Runs one exporter's exports: its log lines quietened, its failures counted and said once."""

    def __init__(self, exporter: SpanExporter | MetricExporter, what: str, endpoint: str, health: _Health) -> None:
        self.exporter = exporter
        self.what = what
        self.endpoint = mask_url(endpoint)  # a password in it is never logged
        self.health = health
        self._abandoned = False

    def run(self, export: Any, size: int) -> bool:
        _exporting.active = True
        try:
            ok = bool(export())
            why = "no answer, or an error answer"
        except Exception as exc:  # noqa: BLE001 - an exporter's failure must never reach the run
            ok, why = False, repr(exc)
        finally:
            _exporting.active = False
        health = self.health
        with health.lock:
            if ok:
                health.down = False
                return True
            health.failures += 1
            health.dropped += size
            warn, health.down = not health.down, True
        if warn:
            _LOG.warning(
                "asm-otel cannot export %s to %s (%s): telemetry is dropped until it answers; runs are unaffected",
                self.what,
                self.endpoint,
                why,
            )
        return False

    def abandon(self) -> None:
        """Stop retrying: an export in progress fails now, later ones at once (at shutdown)."""
        if self._abandoned:
            return
        self._abandoned = True
        _exporting.active = True
        try:
            self.exporter.shutdown()
        finally:
            _exporting.active = False


class GuardedSpanExporter(SpanExporter):
    """A span exporter whose failures are said once and never raised."""

    def __init__(self, inner: SpanExporter, guard: _Guard) -> None:
        self.inner = inner
        self.guard = guard

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.guard.run(lambda: self.inner.export(spans) is SpanExportResult.SUCCESS, len(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.guard.abandon()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class GuardedMetricExporter(MetricExporter):
    """A metric exporter whose failures are said once and never raised."""

    def __init__(self, inner: MetricExporter, guard: _Guard) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.guard = guard

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        points = sum(len(m.metrics) for r in metrics_data.resource_metrics for m in r.scope_metrics)
        ok = self.guard.run(
            lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis) is MetricExportResult.SUCCESS,
            points,
        )
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.guard.abandon()
