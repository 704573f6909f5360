"""Schema-driven fuzzing (schemathesis) against the OpenAPI document the server
serves: bounded in examples and time, no answer is a 5xx, and every answer
conforms to the document (status code, content type, body schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import trio
from _asm_web_helpers import Gate, live_server
from asm_web import WebOptions
from hypothesis import HealthCheck
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.usefixtures("isolated")

#: Examples per operation: enough to touch every parameter, few enough for CI.
EXAMPLES = 12
#: The streams never end on their own; they are tested in test_sse.py.
STREAMS = ("streamEvents", "streamSessions")


def fuzz(url: str) -> list[str]:
    """Every operation but the streams, ``EXAMPLES`` cases each; the operations run."""
    schema = schemathesis.openapi.from_url(f"{url}/v1/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    ran: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") in STREAMS:
            continue

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def check(case: Any) -> None:
            response = case.call(base_url=url, timeout=30)
            case.validate_response(response, checks=checks)

        check()
        ran.append(operation.label)
    return ran


async def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_schema_violation(tmp_path: Path) -> None:
    options = WebOptions(port=0, max_wait_seconds=0.2, max_queued_runs=5)
    sqlite = {"stores": {"sqlite": {"path": str(tmp_path / "asm.db")}}}
    async with live_server(Gate(), options, provider="echo", store="sqlite", **sqlite) as url:
        with trio.fail_after(240):
            ran = await trio.to_thread.run_sync(fuzz, url)
    assert "POST /v1/sessions/{session_id}/runs" in ran and "GET /v1/sessions" in ran
    assert len(ran) == 15  # all 17 operations but the 2 streams
