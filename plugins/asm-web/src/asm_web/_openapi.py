"""The OpenAPI 3.1 document of the ``/v1`` API, served at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from asm.errors import CATEGORIES
from asm.states import RunStatus, SessionStatus
from asm.stores import MAX_SEQ

if TYPE_CHECKING:
    from asm_web._options import WebOptions

__all__ = ["openapi_document"]

_MAX_PAGE: Final = 1000
_STRING: Final = {"type": "string"}
_NULLABLE_STRING: Final = {"type": ["string", "null"]}
_TIME: Final = {"type": "string", "format": "date-time"}
_OBJECT: Final = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "category", "message", "retryable", "details"],
                "properties": {
                    "code": {**_STRING, "description": "stable, machine-readable (asm.errors.CODES)"},
                    "category": {"enum": list(CATEGORIES)},
                    "message": {**_STRING, "description": "one line that says what to do"},
                    "retryable": {"type": "boolean"},
                    "details": _OBJECT,
                },
            }
        },
    },
    "Session": {
        "type": "object",
        "required": ["id", "agent_id", "status", "created_at", "updated_at", "metadata", "tags"],
        "properties": {
            "id": _STRING,
            "agent_id": _STRING,
            "status": {"enum": [s.value for s in SessionStatus]},
            "provider": _NULLABLE_STRING,
            "created_at": _TIME,
            "updated_at": _TIME,
            "parent_session_id": _NULLABLE_STRING,
            "metadata": _OBJECT,
            "tags": {"type": "array", "items": _STRING},
            "error": {"type": ["object", "null"]},
            "one_shot": {"type": "boolean"},
            "forked_from": {"type": ["object", "null"]},
        },
    },
    "SessionPage": {
        "type": "object",
        "required": ["sessions", "next_cursor"],
        "properties": {
            "sessions": {"type": "array", "items": _ref("Session")},
            "next_cursor": {**_NULLABLE_STRING, "description": "pass as cursor= for the next page; null: last page"},
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "session_id", "status", "input", "created_at", "usage"],
        "properties": {
            "id": _STRING,
            "session_id": _STRING,
            "status": {"enum": [s.value for s in RunStatus]},
            "input": _OBJECT,
            "provider": _NULLABLE_STRING,
            "created_at": _TIME,
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "ended_at": {"type": ["string", "null"], "format": "date-time"},
            "result": {"type": ["object", "null"]},
            "error": {"type": ["object", "null"]},
            "usage": _OBJECT,
            "cost": {"type": ["object", "null"]},
            "metadata": _OBJECT,
            "model": _NULLABLE_STRING,
            "owner": {"type": ["object", "null"]},
        },
    },
    "RunList": {
        "type": "object",
        "required": ["runs"],
        "properties": {"runs": {"type": "array", "items": _ref("Run")}},
    },
    "Event": {
        "type": "object",
        "required": ["id", "type", "session_id", "seq", "at", "data"],
        "properties": {
            "id": _STRING,
            "type": _STRING,
            "session_id": _STRING,
            "run_id": _NULLABLE_STRING,
            "seq": {"type": "integer", "minimum": 1},
            "at": _TIME,
            "provider": _NULLABLE_STRING,
            "schema_version": {"type": "integer"},
            "data": _OBJECT,
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["events", "cursor", "has_more"],
        "properties": {
            "events": {"type": "array", "items": _ref("Event")},
            "cursor": {"type": "integer", "minimum": 0, "description": "pass as after= for the next page"},
            "has_more": {"type": "boolean"},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "problems"],
        "properties": {"status": {"enum": ["ready", "not_ready"]}, "problems": {"type": "array", "items": _STRING}},
    },
    "Usage": {
        "type": "object",
        "required": ["group_by", "groups"],
        "properties": {"group_by": _STRING, "groups": {"type": "array", "items": _OBJECT}, "total": _OBJECT},
    },
    "CreateSession": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "agent_id": _NULLABLE_STRING,
            "provider": _NULLABLE_STRING,
            "metadata": _OBJECT,
            "tags": {"type": "array", "items": _STRING},
        },
    },
    "Message": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"enum": ["user", "assistant", "system", "tool"]}, "content": _STRING},
    },
    "SubmitRun": {
        "type": "object",
        "additionalProperties": False,
        "required": ["input"],
        "properties": {
            "input": {
                "description": "a prompt, or a list of messages",
                "oneOf": [{"type": "string"}, {"type": "array", "items": _ref("Message")}],
            },
            "provider": _NULLABLE_STRING,
            "options": _OBJECT,
            "metadata": _OBJECT,
            "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
    },
    "Reason": {"type": "object", "additionalProperties": False, "properties": {"reason": _NULLABLE_STRING}},
    "Fork": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"at_seq": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SEQ}},
    },
    "Empty": {"type": "object", "additionalProperties": False},
}

_ERROR_STATUSES: Final = {
    "400": "bad input: a malformed body, an unknown or bad query parameter, a bad cursor",
    "401": "no bearer token, or an unknown one (when the server has tokens)",
    "403": "a read-only token on a write",
    "404": "no such session, run or endpoint",
    "405": "method not allowed on this path",
    "409": "the transition is not allowed in the current state",
    "413": "the body is larger than [web] max_body_bytes",
    "429": "the session's run queue is full (see Retry-After)",
    "500": "a failure on the server's side",
    "501": "the store cannot answer this (no QueryAPI)",
    "502": "a provider failed",
    "503": "the store is unavailable, or the server is shutting down",
    "504": "timed out",
}


def _errors() -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    responses: dict[str, Any] = {code: {"description": text, **error} for code, text in _ERROR_STATUSES.items()}
    responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    return responses


def _ok(schema: str, description: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _body(schema: str, *, required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


_LIMIT: Final = {"type": "integer", "minimum": 1, "maximum": _MAX_PAGE}
_SEQ: Final = {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
_SHORT: Final = {"type": "string", "minLength": 1, "maxLength": 200}
_SSE: Final = {
    "200": {
        "description": "text/event-stream: `id:` is the event's seq, `event:` its type, `data:` its JSON",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _op(summary: str, op_id: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "operationId": op_id, "responses": {**responses, **_errors()}, **extra}


def openapi_document(options: WebOptions | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (``max_wait_seconds`` from ``options``)."""
    max_wait = options.max_wait_seconds if options is not None else 60.0
    sid = [_path("session_id")]
    rid = [_path("run_id")]
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "asm",
            "version": "1",
            "description": "The Agent Session Manager over HTTP: sessions, runs, and their durable event logs "
            "(pages and resumable Server-Sent Event streams).",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/health": {"get": _op("the process is up", "health", _ok("Health", "up"), security=[{}])},
            "/v1/ready": {
                "get": _op(
                    "the store answers",
                    "ready",
                    {
                        **_ok("Ready", "ready"),
                        "503": {
                            "description": "not ready",
                            "content": {"application/json": {"schema": _ref("Ready")}},
                        },
                    },
                    security=[{}],
                )
            },
            "/v1/sessions": {
                "get": _op(
                    "sessions, newest first",
                    "listSessions",
                    _ok("SessionPage", "a page of sessions"),
                    parameters=[
                        _query("status", {"enum": [s.value for s in SessionStatus]}, "only sessions in this status"),
                        _query("provider", _SHORT, "only sessions of this provider"),
                        _query("agent_id", _SHORT, "only sessions of this agent"),
                        _query("created_after", {"type": "string", "format": "date-time"}, "created at or after"),
                        _query("created_before", {"type": "string", "format": "date-time"}, "created before"),
                        _query("limit", _LIMIT, "page size (default 50)"),
                        _query(
                            "cursor",
                            {"type": "string"},
                            "next_cursor of the previous page (a place in the list, not an offset)",
                        ),
                    ],
                ),
                "post": _op(
                    "create a session (pending; its first run activates it)",
                    "createSession",
                    _ok("Session", "created", "201"),
                    requestBody=_body("CreateSession"),
                ),
            },
            "/v1/sessions/stream": {
                "get": _op("session changes as they happen (text/event-stream)", "streamSessions", _SSE)
            },
            "/v1/sessions/{session_id}": {
                "get": _op("a session", "getSession", _ok("Session", "the session"), parameters=sid)
            },
            "/v1/sessions/{session_id}/complete": {
                "post": _op(
                    "complete a session",
                    "completeSession",
                    _ok("Session", "completed"),
                    parameters=sid,
                    requestBody=_body("Empty"),
                )
            },
            "/v1/sessions/{session_id}/cancel": {
                "post": _op(
                    "cancel a session and its runs",
                    "cancelSession",
                    _ok("Session", "cancelled"),
                    parameters=sid,
                    requestBody=_body("Reason"),
                )
            },
            "/v1/sessions/{session_id}/fork": {
                "post": _op(
                    "a new session with this one's history up to at_seq (default: all of it)",
                    "forkSession",
                    _ok("Session", "the fork", "201"),
                    parameters=sid,
                    requestBody=_body("Fork"),
                )
            },
            "/v1/sessions/{session_id}/runs": {
                "get": _op("a session's runs, oldest first", "listRuns", _ok("RunList", "the runs"), parameters=sid),
                "post": _op(
                    "queue a run on the session (activated if pending or paused)",
                    "submitRun",
                    _ok("Run", "queued", "202"),
                    parameters=sid,
                    requestBody=_body("SubmitRun", required=True),
                ),
            },
            "/v1/sessions/{session_id}/events": {
                "get": _op(
                    "a page of the session's events, oldest first",
                    "readEvents",
                    _ok("EventPage", "a page"),
                    parameters=[
                        *sid,
                        _query("after", _SEQ, "events with seq > after"),
                        _query("before", {**_SEQ, "minimum": 1}, "events with seq < before"),
                        _query("limit", _LIMIT, "page size (default 100)"),
                        _query("types", {"type": "string"}, "comma-separated event types"),
                        _query("run_id", _SHORT, "only this run's events"),
                    ],
                )
            },
            "/v1/sessions/{session_id}/events/stream": {
                "get": _op(
                    "the session's events after a cursor, then live (text/event-stream; resume with Last-Event-ID)",
                    "streamEvents",
                    _SSE,
                    parameters=[
                        *sid,
                        _query("after", _SEQ, "start after this seq (Last-Event-ID wins)"),
                        _query("types", {"type": "string"}, "comma-separated event types"),
                        _query("run_id", _SHORT, "only this run's events"),
                        {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
                    ],
                )
            },
            "/v1/runs/{run_id}": {"get": _op("a run", "getRun", _ok("Run", "the run"), parameters=rid)},
            "/v1/runs/{run_id}/cancel": {
                "post": _op(
                    "cancel a queued or running run",
                    "cancelRun",
                    _ok("Run", "the run once ended"),
                    parameters=rid,
                    requestBody=_body("Reason"),
                )
            },
            "/v1/runs/{run_id}/wait": {
                "get": _op(
                    "long-poll: the run once it has ended, or as it is when timeout passes",
                    "waitRun",
                    _ok("Run", "the run"),
                    parameters=[
                        *rid,
                        _query(
                            "timeout",
                            {"type": "number", "minimum": 0, "maximum": max_wait},
                            f"seconds (default and most: {max_wait:g})",
                        ),
                    ],
                )
            },
            "/v1/usage": {
                "get": _op(
                    "token and cost totals (stores with a QueryAPI)",
                    "usage",
                    _ok("Usage", "the totals"),
                    parameters=[
                        _query("group_by", {"enum": ["session", "agent", "provider", "model"]}, "default: agent"),
                        _query("agent_id", _SHORT, ""),
                        _query("provider", _SHORT, ""),
                        _query("model", _SHORT, ""),
                        _query("session_id", _SHORT, ""),
                        _query("since", {"type": "string", "format": "date-time"}, "runs created at or after"),
                        _query("until", {"type": "string", "format": "date-time"}, "runs created before"),
                    ],
                )
            },
        },
    }
    return document
