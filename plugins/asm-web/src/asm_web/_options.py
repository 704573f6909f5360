"""The ``[web]`` table of ``asm.toml``: where ``asm serve`` listens and who may call it."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from asm.errors import AsmError
from asm.plugins import parse_options

__all__ = ["WebOptions", "check_exposure", "hash_token", "is_loopback", "new_token"]

#: The prefix of a stored token hash: ``sha256:<64 hex digits>``.
HASH_PREFIX: Final = "sha256:"


def hash_token(token: str) -> str:
    """The form a bearer token is kept in config: ``sha256:<hex>`` of its UTF-8 bytes.

    Tokens are random (:func:`new_token`), so a plain SHA-256 is enough to keep
    a leaked config from being a leaked credential.

    >>> hash_token("secret")
    'sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b'
    """
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _check_hashes(instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
    del instance
    for entry in value:
        digest = entry.removeprefix(HASH_PREFIX)
        if not entry.startswith(HASH_PREFIX) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise AsmError(
                "invalid_config",
                f"[web] {attribute.name}: {entry[:12]!r}... is not a token hash; store sha256:<hex> "
                "(print one with `asm serve --hash-token`), never the token itself",
                details={"key": f"web.{attribute.name}"},
            )


@attrs.frozen
class WebOptions:
    """``asm serve``'s settings (the ``[web]`` table; ``--host``/``--port`` override)."""

    host: str = "127.0.0.1"
    port: int = 8765
    #: hashes (``sha256:<hex>``) of bearer tokens that may read and write
    tokens: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_check_hashes)
    #: hashes of bearer tokens that may only read (GET); a write with one is a 403
    read_tokens: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_check_hashes)
    #: origins allowed to call the API from a browser (CORS); empty: CORS is off
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: the largest request body accepted; larger is a 413
    max_body_bytes: int = 1_048_576
    #: a session's runs executing at once, and waiting, through this server
    max_concurrent_runs: int = 1
    max_queued_runs: int = 100
    #: seconds between SSE heartbeat comments on an idle stream
    heartbeat_seconds: float = 15.0
    #: after an event, how long an SSE stream gathers the ones that follow before it writes
    #: (one write per client carries them all: fewer writes when many clients follow a fast run)
    sse_batch_seconds: float = 0.02
    #: how many of a followed session's latest events its feed keeps in memory for its SSE
    #: clients; a client further behind (slow, or resuming from an old cursor) reads the store
    sse_window_events: int = 10_000
    #: the longest ``wait`` long-poll a client may ask for, in seconds
    max_wait_seconds: float = 60.0
    #: where live SSE events come from: this server's runs ("manager"), or the store,
    #: which also sees runs of other processes sharing it ("store")
    follow: Literal["manager", "store"] = "manager"
    #: write an access log line (method, path, status; never a body or query) per request
    access_log: bool = True

    def __attrs_post_init__(self) -> None:
        for name in ("port",):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise AsmError("invalid_config", f"[web] port={value} is not a TCP port (0..65535)")
        for name in ("max_body_bytes", "max_concurrent_runs", "sse_window_events"):
            if getattr(self, name) < 1:
                raise AsmError("invalid_config", f"[web] {name} must be >= 1, not {getattr(self, name)}")
        if self.max_queued_runs < 0:
            raise AsmError("invalid_config", f"[web] max_queued_runs must be >= 0, not {self.max_queued_runs}")
        if not 0 <= self.sse_batch_seconds <= 1:
            raise AsmError("invalid_config", f"[web] sse_batch_seconds must be 0..1, not {self.sse_batch_seconds}")
        for name in ("heartbeat_seconds", "max_wait_seconds"):
            if not getattr(self, name) > 0:
                raise AsmError("invalid_config", f"[web] {name} must be > 0, not {getattr(self, name)}")
        if self.follow not in ("manager", "store"):
            raise AsmError("invalid_config", f"[web] follow must be 'manager' or 'store', not {self.follow!r}")

    @classmethod
    def from_config(cls, table: Mapping[str, Any], **overrides: Any) -> WebOptions:
        """The options of a ``[web]`` table, with ``overrides`` (``None`` values ignored)."""
        merged = {**table, **{key: value for key, value in overrides.items() if value is not None}}
        for key in ("tokens", "read_tokens", "cors_origins"):
            if key in merged and isinstance(merged[key], str):
                merged[key] = [merged[key]]
        return parse_options(cls, merged, "[web]")

    @property
    def auth_required(self) -> bool:
        """Whether any token is configured (then every API call needs one)."""
        return bool(self.tokens or self.read_tokens)

    def access_of(self, token: str) -> Literal["write", "read"] | None:
        """What ``token`` may do: ``write``, ``read`` or nothing (``None``). Every
        configured hash is compared, in constant time, whatever matches first."""
        digest = hash_token(token)
        write = read = False
        for known in self.tokens:
            write |= hmac.compare_digest(digest, known)
        for known in self.read_tokens:
            read |= hmac.compare_digest(digest, known)
        return "write" if write else "read" if read else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(options: WebOptions) -> None:
    """Refuse to listen beyond loopback with no token configured."""
    if not options.auth_required and not is_loopback(options.host):
        raise AsmError(
            "invalid_config",
            f"refusing to serve on {options.host} with no token configured: anyone who can reach it could "
            "run agents; add a token hash to [web] tokens (make one with `asm serve --hash-token`), "
            "or serve on 127.0.0.1",
            details={"host": options.host},
        )
