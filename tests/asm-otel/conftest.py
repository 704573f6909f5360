"""Telemetry under test: the SDK's in-memory span exporter and metric reader, and a
registry instrumented with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asm_otel
import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

import asm
from asm.plugins import PluginRegistry


@attrs.define
class Otel:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: PluginRegistry
    telemetry: asm_otel.Telemetry

    @property
    def tracer(self) -> Tracer:
        """The application's tracer (same provider: its spans land beside asm's)."""
        return self.tracer_provider.get_tracer("the-application")

    def spans(self) -> list[ReadableSpan]:
        self.tracer_provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in self.spans()]}"
        return found[0]

    def metrics(self) -> dict[str, Any]:
        """Each metric by name (its data points in ``.data.data_points``)."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}

    def points(self, name: str) -> list[Any]:
        return list(self.metrics()[name].data.data_points)


def make_otel(*, capture_content: bool = False) -> Otel:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    registry = asm.load_plugins()
    telemetry = asm_otel.instrument(
        registry, tracer_provider=tracer_provider, meter_provider=meter_provider, capture_content=capture_content
    )
    return Otel(exporter, reader, tracer_provider, meter_provider, registry, telemetry)


@pytest.fixture
def otel() -> Iterator[Otel]:
    made = make_otel()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


@pytest.fixture
def otel_factory() -> Iterator[Any]:
    """``otel_factory(capture_content=False)``: another, separate telemetry (another process's)."""
    made: list[Otel] = []

    def factory(*, capture_content: bool = False) -> Otel:
        made.append(make_otel(capture_content=capture_content))
        return made[-1]

    yield factory
    for one in made:
        one.tracer_provider.shutdown()
        one.meter_provider.shutdown()


@pytest.fixture
def otel_content() -> Iterator[Otel]:
    made = make_otel(capture_content=True)
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()
