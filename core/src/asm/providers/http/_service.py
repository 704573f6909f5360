"""A service's error specifics, and the one way every HTTP provider turns failures into AsmErrors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from asm.errors import AsmError
from asm.sse import http_status_failure, provider_failure

__all__ = ["ErrorRule", "HTTPFailure", "Service", "StatusRule"]


@attrs.frozen
class HTTPFailure:
    """What a provider reads off an HTTP error response (or the SDK exception
    carrying it): the status, the API's own error ``kind`` and message, the
    headers (``retry-after``), the request id, and whether the body says the
    account's quota or billing is exhausted (``quota``, the service's specific)."""

    status: int
    kind: str
    detail: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    request_id: str | None = None
    quota: bool = False


@attrs.frozen
class ErrorRule:
    """One row of a provider's exception table: an exception of ``exceptions``
    (and, with ``causes``, whose ``__cause__`` — or itself — is one of those)
    becomes ``AsmError(code)`` with ``provider_error.kind`` ``kind``.

    ``message`` is a :meth:`str.format` template over ``api`` ("the Anthropic
    API"), ``vendor``, ``sdk``, ``provider``, ``exc``, ``cause`` and
    ``cause_type``.
    """

    exceptions: tuple[type[BaseException], ...]
    code: str
    kind: str
    message: str
    retryable: bool | None = None
    causes: tuple[type[BaseException], ...] = ()


@attrs.frozen
class StatusRule:
    """An HTTP error response: ``describe`` reads an exception of ``exceptions``
    as an :class:`HTTPFailure`, which :func:`asm.sse.http_status_failure` classifies."""

    exceptions: tuple[type[BaseException], ...]
    describe: Callable[[Any], HTTPFailure]


def _default_fixes(provider: str, key_env: str) -> dict[int, str]:
    return {
        401: f"set a valid key in the {key_env} environment variable or api_key in [providers.{provider}]",
        413: "the request is too large; send less input",
    }


@attrs.frozen
class Service:
    """What a provider says about the service it talks to; the kit words every
    error from it, so all providers' errors read alike.

    ``provider`` is the provider's name (``claude``), ``vendor`` the service's
    (``Anthropic``: "the Anthropic API", "the Anthropic stream"), ``sdk`` the
    client library's (``anthropic``), ``key_env`` the variable holding the API
    key, ``key_hint`` words added to the missing-key error, ``fixes`` what to do
    after an HTTP status (401 and 413 have defaults), ``rules`` the exception
    table (:class:`StatusRule` / :class:`ErrorRule` rows, the first match wins).
    """

    provider: str
    vendor: str
    key_env: str
    sdk: str = ""
    key_hint: str = ""
    fixes: Mapping[int, str] = attrs.field(factory=dict)
    rules: Sequence[StatusRule | ErrorRule] = ()

    @property
    def api(self) -> str:
        """``the <vendor> API``, as errors name it."""
        return f"the {self.vendor} API"

    def error(self, code: str, kind: str, message: str, *, retryable: bool | None = None, **details: Any) -> AsmError:
        """An :class:`AsmError` with ``details["provider_error"]`` naming this provider and ``kind``."""
        return provider_failure(self.provider, code, kind, message, retryable=retryable, **details)

    def missing_key(self) -> AsmError:
        """No API key in the options nor in :attr:`key_env`."""
        return self.error(
            "provider_authentication_failed",
            "missing_api_key",
            f"no {self.vendor} API key: set the {self.key_env} environment variable "
            f"or api_key in [providers.{self.provider}] of asm.toml{self.key_hint}",
        )

    def malformed(self, what: str) -> AsmError:
        """The stream is not what the wire format says (``malformed_stream``)."""
        return self.error("provider_error", "malformed_stream", f"the {self.vendor} stream is malformed: {what}")

    def interrupted(self, final_event: str) -> AsmError:
        """The stream ended before ``final_event`` (retryable ``stream_interrupted``)."""
        return self.error(
            "provider_unavailable",
            "stream_interrupted",
            f"the {self.vendor} stream ended before its final event ({final_event}); retry the run",
            retryable=True,
        )

    def mid_stream(self, kind: str, detail: str, *, code: str = "provider_error", retryable: bool = False) -> AsmError:
        """An error event inside a stream that had begun well (``kind`` is the API's)."""
        return self.error(code, kind, f"{self.api} failed mid-stream ({kind}): {detail}", retryable=retryable)

    def http(self, failure: HTTPFailure) -> AsmError:
        """An HTTP error response, classified by :func:`asm.sse.http_status_failure`."""
        return http_status_failure(
            self.provider,
            self.api,
            failure.status,
            failure.kind,
            failure.detail,
            failure.headers,
            request_id=failure.request_id,
            fixes={**_default_fixes(self.provider, self.key_env), **self.fixes},
            quota=failure.quota,
        )

    def map_exception(self, exc: Exception) -> AsmError | None:
        """``exc`` as an :class:`AsmError` by :attr:`rules`, or ``None`` when no row matches."""
        if isinstance(exc, AsmError):
            return exc
        for rule in self.rules:
            if not isinstance(exc, rule.exceptions):
                continue
            if isinstance(rule, StatusRule):
                return self.http(rule.describe(exc))
            cause = exc.__cause__ or exc
            if rule.causes and not isinstance(cause, rule.causes):
                continue
            message = rule.message.format(
                api=self.api,
                vendor=self.vendor,
                sdk=self.sdk,
                provider=self.provider,
                exc=exc,
                cause=cause,
                cause_type=type(cause).__name__,
            )
            return self.error(rule.code, rule.kind, message, retryable=rule.retryable)
        return None

    @contextmanager
    def mapped_errors(self) -> Iterator[None]:
        """Exceptions matching :attr:`rules` leave as :class:`AsmError` (SDK errors never escape a plugin)."""
        try:
            yield
        except Exception as exc:
            error = self.map_exception(exc)
            if error is None or error is exc:
                raise
            raise error from None
