"""Telemetry from config and the OTEL_* variables: OTLP to a collector stand-in on
loopback, an endpoint that is down, and config mistakes."""

from __future__ import annotations

import gzip
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

import asm


class Collector:
    """An OTLP/HTTP receiver on loopback: POST /v1/traces and /v1/metrics, protobuf."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request: Any = ExportTraceServiceRequest.FromString(body)
                    reply: bytes = ExportTraceServiceResponse().SerializeToString()
                    with collector.lock:
                        collector.traces.append(request)
                elif self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest.FromString(body)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                    with collector.lock:
                        collector.metrics.append(request)
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def spans(self) -> list[tuple[str, dict[str, Any], Any]]:
        """(service.name, resource attributes, span) for each span received."""
        out = []
        with self.lock:
            for request in self.traces:
                for resource_spans in request.resource_spans:
                    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            out.append((resource.get("service.name", ""), resource, span))
        return out

    def metric_names(self) -> set[str]:
        with self.lock:
            return {
                metric.name
                for request in self.metrics
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
            }


@pytest.fixture
def collector() -> Iterator[Collector]:
    made = Collector()
    made.thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()
    made.thread.join(timeout=10)


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_* variable of the machine's leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for attribute in span.attributes:
        value = attribute.value
        out[attribute.key] = getattr(value, value.WhichOneof("value"))
    return out


async def test_spans_and_metrics_reach_an_otlp_collector(collector: Collector, otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    otel_env.setenv("OTEL_SERVICE_NAME", "checkout-agent")
    async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {}}) as rt:
        run = await rt.run_once("hello collector")
    # Closing the runtime exported what was left: nothing to wait for.
    received = collector.spans()
    assert {service for service, _, _ in received} == {"checkout-agent"}
    names = sorted(span.name for _, _, span in received)
    assert names == ["asm.session", "chat echo", "invoke_agent echo"]
    agent = next(span for _, _, span in received if span.name == "invoke_agent echo")
    assert attributes(agent)["asm.run.id"] == run.id
    assert attributes(agent)["gen_ai.operation.name"] == "invoke_agent"
    assert len({span.trace_id for _, _, span in received}) == 1
    expected = {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "asm.runs.ended"}
    assert expected <= collector.metric_names()


async def test_the_service_name_defaults_to_asm(collector: Collector, otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.endpoint}/v1/traces")
    otel_env.setenv("OTEL_METRICS_EXPORTER", "none")
    async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {}}) as rt:
        await rt.run_once("hi")
    assert {service for service, _, _ in collector.spans()} == {"asm"}
    assert collector.metrics == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connections are refused


async def test_an_endpoint_that_is_down_drops_spans_with_one_warning_and_the_run_goes_on(
    otel_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # With a password in the URL: the warning names the endpoint, never the password.
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://otel:s3cret-pw@127.0.0.1:{free_port()}")
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(60):
        async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {"shutdown_timeout": 0.5}}) as rt:
            runs = [await rt.run_once(f"run {n}") for n in range(3)]
            sink = rt.sinks[0]
    assert [run.status for run in runs] == [asm.RunStatus.COMPLETED] * 3
    warnings = [r for r in caplog.records if r.name == "asm.otel"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert "cannot export spans" in warnings[0].getMessage() and "runs are unaffected" in warnings[0].getMessage()
    assert "otel:***@127.0.0.1" in warnings[0].getMessage()
    assert not [r for r in caplog.records if "s3cret-pw" in r.getMessage()]
    # The exporters' own error per batch and retry were not also shown.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert sink.export_failures >= 1


async def test_a_misspelt_option_is_invalid_config_with_a_did_you_mean(otel_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(asm.AsmError) as caught:
        async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {"capture_contnet": True}}):
            pass
    assert caught.value.code == "invalid_config"
    message = str(caught.value)
    assert "[sinks.otel]" in message and "'capture_contnet'" in message
    assert "did you mean 'capture_content'?" in message and "valid options: capture_content" in message


async def test_a_wrong_type_and_a_misspelt_table_are_invalid_config(otel_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(asm.AsmError, match="capture_content") as caught:
        async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {"capture_content": "yes"}}):
            pass
    assert caught.value.code == "invalid_config"
    with pytest.raises(asm.AsmError, match=r"did you mean \[sinks\.otel\]") as caught:
        async with asm.open_runtime(provider="echo", store="memory", sinks={"otle": {}}):
            pass
    assert caught.value.code == "invalid_config"


async def test_an_exporter_asm_otel_cannot_build_is_invalid_config(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlpp")
    with pytest.raises(asm.AsmError, match=r"OTEL_TRACES_EXPORTER='otlpp'.*did you mean 'otlp'") as caught:
        async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {}}):
            pass
    assert caught.value.code == "invalid_config"
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(asm.AsmError, match="http/protobuf") as caught:
        async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {}}):
            pass
    assert caught.value.code == "invalid_config"


async def test_otel_sdk_disabled_exports_nothing(collector: Collector, otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    otel_env.setenv("OTEL_SDK_DISABLED", "true")
    async with asm.open_runtime(provider="echo", store="memory", sinks={"otel": {}}) as rt:
        run = await rt.run_once("quiet")
    assert run.status is asm.RunStatus.COMPLETED
    assert collector.traces == [] and collector.metrics == []


async def test_without_the_table_nothing_is_recorded(otel_env: pytest.MonkeyPatch) -> None:
    async with asm.open_runtime(provider="echo", store="memory") as rt:
        await rt.run_once("hi")
        assert rt.registry.manager.get_plugin("asm_otel.telemetry") is None
        assert "otel" in rt.registry.names("sinks")
