"""One JSON shape for every error the API answers, and the HTTP status of each asm error code."""

from __future__ import annotations

from typing import Any, Final

from asm.errors import AsmError, category_of

__all__ = ["HttpError", "error_body", "status_of"]

#: Codes of the web layer itself (not raised elsewhere in asm), with their category.
WEB_CODES: Final[dict[str, str]] = {
    "unauthorized": "validation",
    "forbidden": "validation",
    "payload_too_large": "validation",
    "method_not_allowed": "validation",
    "not_acceptable": "validation",
}

_STATUS: Final[dict[str, int]] = {
    # resource
    "not_found": 404,
    "session_not_found": 404,
    "run_not_found": 404,
    "artifact_not_found": 404,
    "workspace_not_found": 404,
    "already_exists": 409,
    # a name in the request that is not installed is the request's fault
    "plugin_not_found": 400,
    "provider_not_found": 400,
    # state conflicts
    "invalid_transition": 409,
    "session_not_active": 409,
    "invalid_operation": 409,
    "workspace_busy": 409,
    # limits
    "queue_full": 429,
    "max_sessions_exceeded": 429,
    "max_runs_exceeded": 429,
    "server_draining": 503,
    "storage_connection_failed": 503,
    "dependency_not_available": 501,
    "timeout": 504,
    # the web layer
    "unauthorized": 401,
    "forbidden": 403,
    "payload_too_large": 413,
    "method_not_allowed": 405,
    "not_acceptable": 406,
}
_BY_CATEGORY: Final[dict[str, int]] = {
    "validation": 400,
    "resource": 404,
    "provider": 502,
    "storage": 500,
    "runtime": 500,
    "concurrency": 429,
    "tool": 500,
}

#: Seconds a client is asked to wait after a 429 (``Retry-After``).
RETRY_AFTER_SECONDS: Final = 1


class HttpError(AsmError):
    """An error of the web layer: an :class:`AsmError` with a code of :data:`WEB_CODES`."""


def status_of(error: AsmError) -> int:
    """The HTTP status an error is answered with (404 unknown id, 400 bad input, 409
    invalid transition, 429 queue full, 5xx a failure on asm's side)."""
    if error.code in _STATUS:
        return _STATUS[error.code]
    return _BY_CATEGORY.get(category_of(error.code), 500)


def error_body(error: AsmError) -> dict[str, Any]:
    """``{"error": {code, category, message, retryable, details}}``; details are
    reduced to JSON scalars and lists (an error's details may hold objects)."""
    category = WEB_CODES.get(error.code) or category_of(error.code)
    return {
        "error": {
            "code": error.code,
            "category": category,
            "message": error.message,
            "retryable": error.retryable,
            "details": {key: _plain(value) for key, value in error.details.items()},
        }
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)
