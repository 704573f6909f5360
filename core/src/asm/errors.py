"""The error taxonomy: every failure a user can see is an :class:`AsmError`.

An error has a ``code`` (stable, machine-readable), a ``category`` (one of
:data:`CATEGORIES`), ``retryable`` and a one-line ``message`` that says what to
do about it. One subclass per category lets callers ``except`` a whole family::

    try:
        await manager.execute_run(run_id)
    except asm.errors.ResourceError as exc:
        print(exc.code, exc)  # run_not_found  run 'run_x' does not exist; ...

Construct errors with the code; the class and ``retryable`` follow from it::

    raise AsmError("validation_error", "input is empty; pass a prompt")
    # -> ValidationError(code='validation_error', retryable=False)
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

__all__ = [
    "CATEGORIES",
    "CODES",
    "AsmError",
    "ConcurrencyError",
    "ProviderFailure",
    "ResourceError",
    "RuntimeFailure",
    "StorageError",
    "ToolError",
    "ValidationError",
    "category_of",
    "is_retryable",
]

CATEGORIES: Final = ("validation", "resource", "provider", "storage", "runtime", "concurrency", "tool")

#: code -> (category, retryable by default)
CODES: Final[dict[str, tuple[str, bool]]] = {
    # validation: the request itself is wrong; fix the input or the config.
    "validation_error": ("validation", False),
    "invalid_input": ("validation", False),
    "invalid_config": ("validation", False),
    "invalid_transition": ("validation", False),
    "invalid_event_type": ("validation", False),
    "invalid_cursor": ("validation", False),
    "session_not_active": ("validation", False),
    "missing_required_capability": ("validation", False),
    # resource: something named does not exist or exists twice.
    "not_found": ("resource", False),
    "session_not_found": ("resource", False),
    "run_not_found": ("resource", False),
    "artifact_not_found": ("resource", False),
    "plugin_not_found": ("resource", False),
    "duplicate_plugin": ("resource", False),
    "plugin_load_failed": ("resource", False),
    "already_exists": ("resource", False),
    # provider: the model / CLI / API failed.
    "provider_error": ("provider", False),
    "provider_unavailable": ("provider", True),
    "provider_rate_limited": ("provider", True),
    "provider_timeout": ("provider", True),
    "provider_authentication_failed": ("provider", False),
    "provider_quota_exceeded": ("provider", False),
    "provider_not_found": ("provider", False),
    # storage: a store failed.
    "storage_error": ("storage", False),
    "storage_connection_failed": ("storage", True),
    "storage_write_failed": ("storage", False),
    "storage_read_failed": ("storage", False),
    "storage_not_found": ("storage", False),
    "storage_permission_denied": ("storage", False),
    "artifact_corrupt": ("storage", False),
    "migration_required": ("storage", False),
    "dependency_not_available": ("storage", False),
    # runtime: the run itself ended abnormally.
    "timeout": ("runtime", True),
    "cancelled": ("runtime", False),
    "policy_violation": ("runtime", False),
    "internal_error": ("runtime", False),
    "invalid_operation": ("runtime", False),
    # concurrency: limits and queues.
    "queue_full": ("concurrency", True),
    "server_draining": ("concurrency", False),
    "max_sessions_exceeded": ("concurrency", True),
    "max_runs_exceeded": ("concurrency", True),
    # tool: a tool call failed.
    "tool_error": ("tool", False),
    "tool_not_found": ("tool", False),
    "tool_execution_failed": ("tool", False),
    "tool_permission_denied": ("tool", False),
    # workspace: snapshots, diffs and rollback of the directory a run works in.
    "workspace_not_found": ("resource", False),
    "workspace_busy": ("validation", False),
    "workspace_changed": ("validation", False),
    "workspace_too_large": ("validation", False),
    "workspace_rollback_unsupported": ("validation", False),
    "workspace_error": ("runtime", False),
    # continuity (asm.continuity)
    "context_window_exceeded": ("validation", False),
    "resume_not_found": ("provider", False),
}


def category_of(code: str) -> str:
    """The category of ``code``; ``"runtime"`` for a code asm does not know.

    >>> category_of("session_not_found")
    'resource'
    """
    return CODES.get(code, ("runtime", False))[0]


def is_retryable(code: str) -> bool:
    """Whether an error with ``code`` is worth retrying by default.

    >>> is_retryable("provider_rate_limited"), is_retryable("validation_error")
    (True, False)
    """
    return CODES.get(code, ("runtime", False))[1]


class AsmError(Exception):
    """Base of every error asm raises on purpose.

    ``AsmError(code, message)`` returns an instance of the subclass for the
    code's category, so ``except ValidationError`` catches every validation
    code. ``retryable`` defaults to the code's default (``provider_rate_limited``
    is retryable, ``validation_error`` is not) and may be overridden, e.g. with
    a provider's ``retry-after``.
    """

    category: ClassVar[str] = "runtime"

    code: str
    message: str
    retryable: bool
    details: dict[str, Any]

    def __new__(cls, code: str = "internal_error", *args: Any, **kwargs: Any) -> AsmError:  # noqa: ARG004
        target: type[AsmError] = cls
        if cls is AsmError:
            target = _CLASS_BY_CATEGORY.get(category_of(code), AsmError)
        return super().__new__(target)

    def __init__(
        self,
        code: str = "internal_error",
        message: str = "",
        *,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.retryable = is_retryable(code) if retryable is None else retryable
        self.details = dict(details or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, retryable={self.retryable})"

    def __reduce__(self) -> Any:
        return (_rebuild, (self.code, self.message, self.retryable, self.details))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: code, category, message, retryable, details."""
        return {
            "code": self.code,
            "category": category_of(self.code),
            "message": self.message,
            "retryable": self.retryable,
            "details": self.details,
        }


def _rebuild(code: str, message: str, retryable: bool, details: dict[str, Any]) -> AsmError:
    return AsmError(code, message, retryable=retryable, details=details)


class ValidationError(AsmError):
    """The request, input or configuration is invalid; fix it and try again."""

    category = "validation"


class ResourceError(AsmError):
    """A named session, run, artifact or plugin is missing (or exists twice)."""

    category = "resource"


class ProviderFailure(AsmError):
    """A provider (API or CLI) failed; see ``retryable`` and ``details``."""

    category = "provider"


class StorageError(AsmError):
    """A store failed to read or write."""

    category = "storage"


class RuntimeFailure(AsmError):
    """A run ended abnormally: timeout, cancellation, policy, internal error."""

    category = "runtime"


class ConcurrencyError(AsmError):
    """A limit or queue refused the work; usually retryable later."""

    category = "concurrency"


class ToolError(AsmError):
    """A tool call failed or was not permitted."""

    category = "tool"


_CLASS_BY_CATEGORY: Final[dict[str, type[AsmError]]] = {
    klass.category: klass
    for klass in (
        ValidationError,
        ResourceError,
        ProviderFailure,
        StorageError,
        RuntimeFailure,
        ConcurrencyError,
        ToolError,
    )
}
