"""The /v1 REST API through the ASGI application: what each call answers, and
what each kind of bad input gets (the one error shape, with its HTTP status)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from _asm_web_helpers import Gate, asgi_client
from asm_web import WebOptions, check_exposure, hash_token

from asm.errors import AsmError
from asm.model import Session

pytestmark = pytest.mark.usefixtures("isolated")


def error_of(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "category", "message", "retryable", "details"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return dict(error)


async def new_session(client: httpx2.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/sessions/{response.json()['id']}"
    return dict(response.json())


async def test_health_ready_and_the_openapi_document(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        assert (await client.get("/v1/health")).json() == {"status": "ok"}
        ready = await client.get("/v1/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "problems": []}
        doc = (await client.get("/v1/openapi.json")).json()
        assert doc["openapi"] == "3.1.0"
        assert "/v1/sessions/{session_id}/events/stream" in doc["paths"]
        assert doc["paths"]["/v1/sessions"]["post"]["responses"]["201"]


async def test_a_run_submitted_streams_ends_and_is_read_back(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        session = await new_session(client, agent_id="helper", metadata={"team": "a"}, tags=["x"])
        assert session["status"] == "pending" and session["agent_id"] == "helper"
        submitted = await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "hi"})
        assert submitted.status_code == 202
        run = submitted.json()
        assert submitted.headers["location"] == f"/v1/runs/{run['id']}"
        assert run["status"] in ("pending", "running")
        gate.release("Hel", "lo")
        gate.finish()
        waited = await client.get(f"/v1/runs/{run['id']}/wait", params={"timeout": 30})
        assert waited.json()["status"] == "completed"
        assert waited.json()["result"]["output"] == "Hello"
        assert (await client.get(f"/v1/runs/{run['id']}")).json()["usage"]["input_tokens"] == 3
        assert (await client.get(f"/v1/sessions/{session['id']}")).json()["status"] == "active"
        runs = (await client.get(f"/v1/sessions/{session['id']}/runs")).json()["runs"]
        assert [r["id"] for r in runs] == [run["id"]]

        page = (await client.get(f"/v1/sessions/{session['id']}/events", params={"limit": 3})).json()
        assert [e["seq"] for e in page["events"]] == [1, 2, 3] and page["has_more"] and page["cursor"] == 3
        rest = (await client.get(f"/v1/sessions/{session['id']}/events", params={"after": 3})).json()
        assert rest["events"][0]["seq"] == 4 and not rest["has_more"]
        deltas = await client.get(
            f"/v1/sessions/{session['id']}/events", params={"types": "message_streamed", "run_id": run["id"]}
        )
        assert [e["data"]["delta"] for e in deltas.json()["events"]] == ["Hel", "lo"]
        before = (await client.get(f"/v1/sessions/{session['id']}/events", params={"before": 3})).json()
        assert [e["seq"] for e in before["events"]] == [1, 2]


async def test_wait_returns_a_running_run_when_its_timeout_passes(gate: Gate) -> None:
    async with asgi_client(gate, WebOptions(max_wait_seconds=0.05)) as (client, _):
        session = await new_session(client)
        run = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "hi"})).json()
        # asks for 30s; the server's max_wait_seconds (0.05) caps it
        waited = await client.get(f"/v1/runs/{run['id']}/wait", params={"timeout": 30})
        assert waited.status_code == 200 and waited.json()["status"] in ("pending", "running")
        gate.finish()


async def test_sessions_list_with_filters_and_cursor_pages(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        made = [await new_session(client, agent_id="a" if i % 2 else "b") for i in range(5)]
        await client.post(f"/v1/sessions/{made[0]['id']}/cancel", json={"reason": "done"})
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = (await client.get("/v1/sessions", params=params)).json()
            seen += [s["id"] for s in body["sessions"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and seen == [s["id"] for s in reversed(made)]
        only_a = (await client.get("/v1/sessions", params={"agent_id": "a"})).json()["sessions"]
        assert {s["id"] for s in only_a} == {made[1]["id"], made[3]["id"]}
        cancelled = (await client.get("/v1/sessions", params={"status": "cancelled"})).json()["sessions"]
        assert [s["id"] for s in cancelled] == [made[0]["id"]]
        by_provider = (await client.get("/v1/sessions", params={"provider": "nope"})).json()["sessions"]
        assert by_provider == []
        later = (await client.get("/v1/sessions", params={"created_after": "2999-01-01T00:00:00Z"})).json()
        assert later["sessions"] == [] and later["next_cursor"] is None


async def test_complete_cancel_and_fork(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        session = await new_session(client)
        run = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "hi"})).json()
        gate.release("a")
        gate.finish()
        await client.get(f"/v1/runs/{run['id']}/wait")
        fork = await client.post(f"/v1/sessions/{session['id']}/fork", json={"at_seq": 2})
        assert fork.status_code == 201
        assert fork.json()["forked_from"] == {"session_id": session["id"], "seq": 2}
        events = (await client.get(f"/v1/sessions/{fork.json()['id']}/events")).json()["events"]
        assert [e["seq"] for e in events] == [1, 2]
        whole = (await client.post(f"/v1/sessions/{session['id']}/fork")).json()
        assert whole["forked_from"]["seq"] > 2
        done = await client.post(f"/v1/sessions/{session['id']}/complete")
        assert done.status_code == 200 and done.json()["status"] == "completed"
        error_of(await client.post(f"/v1/sessions/{session['id']}/complete"), 409, "invalid_transition")
        error_of(await client.post(f"/v1/sessions/{session['id']}/cancel"), 409, "invalid_transition")
        error_of(
            await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "more"}), 409, "session_not_active"
        )
        error_of(await client.post(f"/v1/sessions/{session['id']}/fork", json={"at_seq": 999}), 400, "validation_error")


async def test_cancel_a_running_run_and_a_session_with_one(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        session = await new_session(client)
        run = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "hi"})).json()
        await gate.started.wait()
        cancelled = await client.post(f"/v1/runs/{run['id']}/cancel", json={"reason": "enough"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = await client.post(f"/v1/runs/{run['id']}/cancel")
        assert again.json()["status"] == "cancelled"
        second = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "again"})).json()
        ended = await client.post(f"/v1/sessions/{session['id']}/cancel", json={"reason": "closing"})
        assert ended.json()["status"] == "cancelled"
        assert (await client.get(f"/v1/runs/{second['id']}")).json()["status"] == "cancelled"


async def test_a_full_queue_is_429_with_retry_after(gate: Gate) -> None:
    async with asgi_client(gate, WebOptions(max_queued_runs=1)) as (client, _):
        session = await new_session(client)
        first = await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "one"})
        await gate.started.wait()
        second = await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "two"})
        assert first.status_code == second.status_code == 202
        third = await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "three"})
        error = error_of(third, 429, "queue_full")
        assert error["retryable"] is True and error["category"] == "concurrency"
        assert third.headers["retry-after"] == "1"
        gate.finish()
        gate.finish()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/v1/sessions/ses_nope", {}, 404, "session_not_found"),
        ("GET", "/v1/runs/run_nope", {}, 404, "run_not_found"),
        ("GET", "/v1/runs/run_nope/wait", {}, 404, "run_not_found"),
        ("POST", "/v1/runs/run_nope/cancel", {}, 404, "run_not_found"),
        ("GET", "/v1/sessions/ses_nope/events", {}, 404, "session_not_found"),
        ("GET", "/v1/sessions/ses_nope/events/stream", {}, 404, "session_not_found"),
        ("POST", "/v1/sessions/ses_nope/runs", {"json": {"input": "x"}}, 404, "session_not_found"),
        ("GET", "/v1/nothing-here", {}, 404, "not_found"),
        ("DELETE", "/v1/sessions", {}, 405, "method_not_allowed"),
        ("GET", "/v1/sessions", {"params": {"cursor": "not-a-cursor"}}, 400, "invalid_cursor"),
        ("GET", "/v1/sessions", {"params": {"limit": "-1"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": {"limit": "100000000000000000000000"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": {"limit": "ten"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": {"status": "sleeping"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": {"created_after": "yesterday"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": {"colour": "red"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": [("limit", "1"), ("limit", "2")]}, 400, "validation_error"),
        ("GET", "/v1/health", {"params": {"verbose": "1"}}, 400, "validation_error"),
        ("GET", "/v1/sessions", {"params": {"access_token": "abc"}}, 400, "invalid_input"),
        ("GET", "/v1/health", {"params": {"token": "abc"}}, 400, "invalid_input"),
        ("POST", "/v1/sessions", {"content": b"{not json"}, 400, "validation_error"),
        ("POST", "/v1/sessions", {"content": b"[1, 2]"}, 400, "validation_error"),
        ("POST", "/v1/sessions", {"content": b'{"metadata": NaN}'}, 400, "validation_error"),
        ("POST", "/v1/sessions", {"content": b'{"agent_id": "\\ud800"}'}, 400, "validation_error"),
        ("POST", "/v1/sessions", {"json": {"agent_id": 5}}, 400, "validation_error"),
        ("POST", "/v1/sessions", {"json": {"colour": "red"}}, 400, "validation_error"),
        ("POST", "/v1/sessions", {"json": {"provider": "no-such-provider"}}, 400, "provider_not_found"),
        ("GET", "/static/../pyproject.toml", {}, 404, "not_found"),
        ("GET", "/static/%2e%2e/_app.py", {}, 404, "not_found"),
        ("GET", "/static/..%2f_app.py", {}, 404, "not_found"),
        ("GET", "/static/app.py", {}, 404, "not_found"),
        ("GET", "/static/.hidden.js", {}, 404, "not_found"),
    ],
)
async def test_bad_requests_get_the_error_shape(
    gate: Gate, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    async with asgi_client(gate) as (client, _):
        error_of(await client.request(method, path, **kwargs), status, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"input": ""}, "validation_error"),
        ({"input": 5}, "validation_error"),
        ({"input": [{"role": "robot", "content": "x"}]}, "validation_error"),
        ({"input": "x", "timeout": -1}, "validation_error"),
        ({"input": "x", "timeout": "soon"}, "validation_error"),
        ({"input": "x", "options": []}, "validation_error"),
        ({"input": "x", "provider": "no-such-provider"}, "provider_not_found"),
        ({"input": "x", "extra": 1}, "validation_error"),
    ],
)
async def test_bad_run_submissions(gate: Gate, body: dict[str, Any], code: str) -> None:
    async with asgi_client(gate) as (client, _):
        session = await new_session(client)
        error_of(await client.post(f"/v1/sessions/{session['id']}/runs", json=body), 400, code)
        # nothing was queued
        assert (await client.get(f"/v1/sessions/{session['id']}/runs")).json()["runs"] == []


async def test_bad_cursors_and_last_event_ids(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        session = await new_session(client)
        events = f"/v1/sessions/{session['id']}/events"
        error_of(await client.get(events, params={"after": "-1"}), 400, "invalid_cursor")
        error_of(await client.get(events, params={"after": str(2**63)}), 400, "invalid_cursor")
        error_of(await client.get(events, params={"before": "0"}), 400, "invalid_cursor")
        error_of(await client.get(events, params={"types": "not_a_type"}), 400, "validation_error")
        error_of(await client.get(events, params={"limit": "0"}), 400, "validation_error")
        stream = events + "/stream"
        error_of(await client.get(stream, headers={"Last-Event-ID": "twelve"}), 400, "invalid_cursor")
        error_of(await client.get(stream, params={"types": "nope"}), 400, "validation_error")


async def test_a_body_over_the_cap_is_413(gate: Gate) -> None:
    async with asgi_client(gate, WebOptions(max_body_bytes=100)) as (client, _):
        error = error_of(await client.post("/v1/sessions", json={"agent_id": "x" * 200}), 413, "payload_too_large")
        assert error["details"] == {"max_body_bytes": 100}

        assert (await client.post("/v1/sessions", json={})).status_code == 201


async def test_bearer_tokens(gate: Gate) -> None:
    options = WebOptions(tokens=[hash_token("writer")], read_tokens=[hash_token("reader")])
    async with asgi_client(gate, options) as (client, _):
        response = await client.get("/v1/sessions")
        error_of(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        error_of(await client.get("/v1/sessions", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        error_of(await client.get("/v1/sessions", headers={"Authorization": "Basic d3JpdGVy"}), 401, "unauthorized")
        reader = {"Authorization": "Bearer reader"}
        writer = {"Authorization": "Bearer writer"}
        assert (await client.get("/v1/sessions", headers=reader)).status_code == 200
        error_of(await client.post("/v1/sessions", headers=reader, json={}), 403, "forbidden")
        assert (await client.post("/v1/sessions", headers=writer, json={})).status_code == 201
        # health, readiness and the API's description are open; the viewer's files too
        assert (await client.get("/v1/health")).status_code == 200
        assert (await client.get("/v1/openapi.json")).status_code == 200
        assert (await client.get("/")).status_code == 200
        # a token in the URL is refused even when it is right
        error_of(await client.get("/v1/sessions", params={"token": "writer"}), 400, "invalid_input")


def test_tokens_are_kept_as_hashes_and_exposure_needs_one() -> None:
    with pytest.raises(AsmError) as bad:
        WebOptions.from_config({"tokens": ["my-plain-token"]})
    assert bad.value.code == "invalid_config" and "asm serve --hash-token" in bad.value.message
    with pytest.raises(AsmError) as exposed:
        check_exposure(WebOptions(host="0.0.0.0"))
    assert exposed.value.code == "invalid_config" and "no token" in exposed.value.message
    check_exposure(WebOptions(host="0.0.0.0", tokens=[hash_token("t")]))
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        check_exposure(WebOptions(host=host))
    with pytest.raises(AsmError, match="unknown option"):
        WebOptions.from_config({"prot": 1})


async def test_cors_is_off_unless_origins_are_listed(gate: Gate) -> None:
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    async with asgi_client(gate) as (client, _):
        response = await client.get("/v1/health", headers={"Origin": "https://ui.example"})
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-origin" not in (await client.options("/v1/sessions", headers=preflight)).headers
    async with asgi_client(gate, WebOptions(cors_origins=["https://ui.example"])) as (client, _):
        allowed = await client.options("/v1/sessions", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        other = await client.options("/v1/sessions", headers={**preflight, "Origin": "https://evil.example"})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers


async def test_access_log_has_no_query_string_and_no_event_content(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asm_web.access")
    async with asgi_client(gate) as (client, _):
        session = await new_session(client, metadata={"secret": "s3cr3t-meta"})
        run = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "private-prompt"})).json()
        gate.release("private-answer")
        gate.finish()
        await client.get(f"/v1/runs/{run['id']}/wait")
        await client.get(f"/v1/sessions/{session['id']}/events", params={"types": "message_streamed"})
    lines = [r.getMessage() for r in caplog.records if r.name == "asm_web.access"]
    assert any(f'"POST /v1/sessions/{session["id"]}/runs" 202' in line for line in lines)
    text = "\n".join(lines)
    for secret in ("private-prompt", "private-answer", "s3cr3t-meta", "message_streamed"):
        assert secret not in text


async def test_usage_needs_a_query_store(gate: Gate, tmp_path: Any) -> None:
    async with asgi_client(gate) as (client, _):
        error_of(await client.get("/v1/usage"), 501, "dependency_not_available")
    sqlite = {"stores": {"sqlite": {"path": str(tmp_path / "asm.db")}}}
    async with asgi_client(gate, store="sqlite", **sqlite) as (client, _):
        session = await new_session(client, agent_id="counter")
        run = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": "hi"})).json()
        gate.release("abcdefgh")
        gate.finish()
        await client.get(f"/v1/runs/{run['id']}/wait")
        usage = (await client.get("/v1/usage", params={"group_by": "agent"})).json()
        assert usage["group_by"] == "agent"
        [group] = [g for g in usage["groups"] if g["key"] == "counter"]
        assert group["runs"] == 1 and group["input_tokens"] == 3
        error_of(await client.get("/v1/usage", params={"group_by": "colour"}), 400, "validation_error")
        # sessions list through the store's QueryAPI: filters and pages as with memory
        made = [await new_session(client, agent_id="pager") for _ in range(3)]
        page = (await client.get("/v1/sessions", params={"agent_id": "pager", "limit": 2})).json()
        assert [s["id"] for s in page["sessions"]] == [made[2]["id"], made[1]["id"]]
        last = (await client.get("/v1/sessions", params={"agent_id": "pager", "cursor": page["next_cursor"]})).json()
        assert [s["id"] for s in last["sessions"]] == [made[0]["id"]] and last["next_cursor"] is None


async def test_the_viewer_files_are_served(gate: Gate) -> None:
    async with asgi_client(gate) as (client, _):
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<html" in page.text.lower()
        with trio.fail_after(5):
            doc = json.loads((await client.get("/v1/openapi.json")).text)
        assert doc["info"]["title"] == "asm"


async def test_a_sessions_server_closes_when_idle_so_sessions_do_not_pile_up(gate: Gate) -> None:
    # One session slot in the whole runtime: a server kept open after its run would block the next.
    async with asgi_client(gate, max_parallel_sessions=1) as (client, service):
        for prompt in ("first", "second", "third"):
            session = await new_session(client)
            run = (await client.post(f"/v1/sessions/{session['id']}/runs", json={"input": prompt})).json()
            gate.release(prompt)
            gate.finish()
            with trio.fail_after(30):
                waited = (await client.get(f"/v1/runs/{run['id']}/wait", params={"timeout": 30})).json()
            assert waited["status"] == "completed" and waited["result"]["output"] == prompt
        with trio.fail_after(30):
            while service.serving():
                await trio.lowlevel.checkpoint()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def list_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The runtime config of each kind of store the sessions list pages through: memory (no
    QueryAPI: filtered in Python), and a SQLite file and a PostgreSQL schema of their own."""
    if request.param == "memory":
        yield {"store": "memory"}
    elif request.param == "sqlite":
        yield {"store": "sqlite", "stores": {"sqlite": {"path": str(tmp_path / "asm.db")}}}
    else:
        import psycopg

        schema = f"asm_web_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
            yield {"store": "sqlalchemy", "stores": {"sqlalchemy": {"url": url}}}
        finally:
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_the_sessions_cursor_is_a_place_in_the_list_stable_under_inserts_and_ties(
    gate: Gate, list_store: dict[str, Any]
) -> None:
    """Pages go by (created_at, id), newest first: sessions created while a client pages
    neither shift nor repeat what it sees, and sessions of the same microsecond (pages
    of 4 end inside groups of 3 and 6 of them) are each listed once."""
    base = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    seconds = [0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9, 9, 9, 9, *range(10, 21)]
    made = [
        Session(id=f"ses_{i:03d}", agent_id="lister", created_at=base + timedelta(seconds=second))
        for i, second in enumerate(seconds)
    ]
    newest_first = sorted(made, key=lambda s: (s.created_at, s.id), reverse=True)
    async with asgi_client(gate, **list_store) as (client, service):
        for session in made:
            await service.runtime.store.save_session(session)
        seen: list[str] = []
        cursor = None
        inserted = False
        while True:
            params: dict[str, Any] = {"agent_id": "lister", "limit": 4, **({"cursor": cursor} if cursor else {})}
            body = (await client.get("/v1/sessions", params=params)).json()
            seen += [s["id"] for s in body["sessions"]]
            if not inserted:  # newer sessions arrive after the first page: the next pages are unmoved
                for i in range(3):
                    await service.runtime.store.save_session(
                        Session(id=f"ses_new{i}", agent_id="lister", created_at=base + timedelta(days=1))
                    )
                inserted = True
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == [s.id for s in newest_first]
        # a window and a status with the cursor: the bounds hold across pages
        window = {"agent_id": "lister", "limit": 2, "created_before": (base + timedelta(seconds=10)).isoformat()}
        first = (await client.get("/v1/sessions", params=window)).json()
        rest = (await client.get("/v1/sessions", params={**window, "limit": 50, "cursor": first["next_cursor"]})).json()
        expected = [s.id for s in newest_first if s.created_at < base + timedelta(seconds=10)]
        assert [s["id"] for s in first["sessions"] + rest["sessions"]] == expected
        assert rest["next_cursor"] is None


async def test_a_cursor_that_is_not_one_the_api_gave_is_a_400(gate: Gate) -> None:
    def encoded(data: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    async with asgi_client(gate) as (client, _):
        for bad in [
            "not-a-cursor",
            encoded({"o": 50}),  # the offsets this API once gave
            encoded({"t": "2026-03-01T12:00:00", "i": "ses_x"}),  # no time zone
            encoded({"t": "yesterday", "i": "ses_x"}),
            encoded({"t": "2026-03-01T12:00:00+00:00", "i": 7}),
            encoded({"t": "2026-03-01T12:00:00+00:00", "i": ""}),
            encoded({"t": "2026-03-01T12:00:00+00:00", "i": "ses\nx"}),
            encoded(["2026-03-01T12:00:00+00:00", "ses_x"]),
        ]:
            error_of(await client.get("/v1/sessions", params={"cursor": bad}), 400, "invalid_cursor")
