"""Value types: sessions, runs, inputs, results, usage, cost, artifacts, pages.

Every value is a frozen attrs class; change one with ``attrs.evolve``. The
:class:`~asm.events.Event` envelope and its payloads live in :mod:`asm.events`.

>>> RunInput.coerce("hello").messages
(Message(role='user', content='hello'),)
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from asm.errors import AsmError
from asm.states import RunStatus, SessionStatus

if TYPE_CHECKING:
    from asm.events import Event

__all__ = [
    "CAPABILITY_NAMES",
    "Artifact",
    "Capabilities",
    "CONTINUATION_MODES",
    "RESUME",
    "Cost",
    "Entry",
    "ErrorInfo",
    "ForkPoint",
    "Message",
    "Page",
    "ProcessIdentity",
    "ProviderError",
    "Run",
    "RunInput",
    "RunOwner",
    "RunResult",
    "Session",
    "TokenUsage",
    "check_continuation",
    "new_id",
    "to_decimal",
    "truncate_text",
    "utcnow",
]


def _id_counter() -> Callable[[], int]:
    """A counter of 80-bit numbers (20 hex digits) starting at a random point."""
    return itertools.count((1 << 79) | int.from_bytes(os.urandom(10), "big") >> 2).__next__


#: This process's id counter (``_ids[0]()``); a forked child starts its own at a new random point.
_ids: list[Callable[[], int]] = [_id_counter()]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The millisecond of the last id made: (Unix milliseconds, ``"_"`` + them in 12 hex
#: digits, that millisecond as a UTC datetime); one tuple, swapped whole.
_id_time: list[tuple[int, str, datetime]] = [(-1, "", _EPOCH)]


def _reseed_ids() -> None:
    _ids[0] = _id_counter()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


def _tick(ms: int) -> tuple[int, str, datetime]:
    """The id time of Unix millisecond ``ms``, cached as the current one."""
    stamp = _id_time[0] = (ms, f"_{ms:012x}", _EPOCH + timedelta(milliseconds=ms))
    return stamp


def new_id(prefix: str) -> str:
    """A new unique id: ``prefix`` + ``_`` + 32 hex digits, the first 12 the
    Unix time in milliseconds and the other 20 (80 bits) from a counter each
    process (and each forked child) starts at a random point, as in UUIDv7.

    Ids made later sort later (within a millisecond too, in one process), so a
    database index on them grows at its end instead of being written all over
    (several times cheaper per event stored). Two processes' ids of the same
    millisecond differ unless their counters, each started at one of 2**78
    random points, overlap. (``asm.events`` makes events' ids the same way,
    inlined, with the millisecond as the event's time.)

    >>> a, b = new_id("evt"), new_id("evt")
    >>> a.startswith("evt_") and len(a) == 36 and a < b
    True
    """
    ms = time.time_ns() // 1_000_000
    stamp = _id_time[0]
    if stamp[0] != ms:
        stamp = _tick(ms)
    return prefix + stamp[1] + _ids[0]().to_bytes(10, "big").hex()


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@attrs.frozen
class TokenUsage:
    """Tokens used; ``+`` adds two usages field by field.

    >>> (TokenUsage(input_tokens=3) + TokenUsage(output_tokens=4)).total_tokens
    7
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (cache tokens are part of the input)."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """An exact ``Decimal`` from a number or numeric string (a float by its shortest repr).

    >>> to_decimal(0.1) + to_decimal("0.2")
    Decimal('0.3')
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AsmError("validation_error", f"{value!r} is not a number")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise AsmError("validation_error", f"{value!r} is not a number") from None
    if not result.is_finite():
        raise AsmError("validation_error", f"{value!r} is not a finite number")
    return result


@attrs.frozen
class Cost:
    """A cost in US dollars (exact decimals), with its breakdown where known.

    >>> Cost(total_usd=0.25).total_usd
    Decimal('0.25')
    """

    total_usd: Decimal = attrs.field(default=Decimal(0), converter=to_decimal)
    input_usd: Decimal = attrs.field(default=Decimal(0), converter=to_decimal)
    output_usd: Decimal = attrs.field(default=Decimal(0), converter=to_decimal)
    cache_read_usd: Decimal = attrs.field(default=Decimal(0), converter=to_decimal)
    cache_write_usd: Decimal = attrs.field(default=Decimal(0), converter=to_decimal)

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.total_usd + other.total_usd,
            self.input_usd + other.input_usd,
            self.output_usd + other.output_usd,
            self.cache_read_usd + other.cache_read_usd,
            self.cache_write_usd + other.cache_write_usd,
        )


@attrs.frozen
class Capabilities:
    """What a provider can do; the router matches runs on these flags."""

    streaming: bool = True
    tools: bool = False
    thinking: bool = False
    native_resume: bool = False
    code_execution: bool = False
    file_access: bool = False
    #: the provider runs tools itself and calls ``emit.authorize_tool`` before each one, so asm
    #: need not judge its ``tool_call_started`` events against tool rules (see docs/policy.md)
    authorizes_tools: bool = False
    #: the prompt is a command: the run option ``argv`` (a list of strings) gives its exact
    #: arguments, and ``asm run`` passes a prompt of several words that way instead of joining them
    takes_argv: bool = False
    #: images in the input are understood
    vision: bool = False

    def missing(self, names: Sequence[str]) -> tuple[str, ...]:
        """Which of the capability ``names`` this provider lacks.

        >>> Capabilities(tools=True).missing(["tools", "thinking"])
        ('thinking',)
        """
        return tuple(name for name in names if not getattr(self, name))


#: The capability names a run may require (the fields of :class:`Capabilities`).
CAPABILITY_NAMES: Final = tuple(field.name for field in attrs.fields(Capabilities))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # "tools" is one capability, not five letters
        return (value,)
    return tuple(value)


def _check_capabilities(_: object, attribute: attrs.Attribute[tuple[str, ...]], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in CAPABILITY_NAMES:
            from asm.config import close_match

            close = close_match(name, CAPABILITY_NAMES)
            hint = f"did you mean {close!r}? " if close else ""
            raise AsmError(
                "validation_error",
                f"{attribute.name}: {name!r} is not a capability; {hint}capabilities are {', '.join(CAPABILITY_NAMES)}",
                details={"capability": name},
            )


@attrs.frozen
class ProviderError:
    """What a provider reported when it failed; ``stderr`` is already cut to the
    ``error_text_max_bytes`` / ``error_text_max_lines`` limits (``truncated`` says so)."""

    provider: str
    kind: str
    message: str
    exit_code: int | None = None
    stderr: str | None = None
    truncated: bool = False

    def truncated_to(self, *, max_bytes: int, max_lines: int) -> ProviderError:
        """This error with ``stderr`` cut to the limits (``truncated`` set if cut)."""
        if self.stderr is None:
            return self
        stderr, cut = truncate_text(self.stderr, max_bytes=max_bytes, max_lines=max_lines)
        if not cut:
            return self
        return attrs.evolve(self, stderr=stderr, truncated=True)


def truncate_text(text: str, *, max_bytes: int, max_lines: int) -> tuple[str, bool]:
    """Cut ``text`` to its first ``max_lines`` lines, then to ``max_bytes``
    UTF-8 bytes (never splitting a character); say whether anything was cut.

    >>> truncate_text("a\\nb\\nc", max_bytes=100, max_lines=2)
    ('a\\nb', True)
    """
    cut = False
    lines = text.split("\n")
    if len(lines) > max_lines:
        text, cut = "\n".join(lines[:max_lines]), True
    encoded = text.encode("utf-8")
    if len(encoded) > max_bytes:
        text, cut = encoded[:max_bytes].decode("utf-8", errors="ignore"), True
    return text, cut


@attrs.frozen
class ErrorInfo:
    """Why a run or session failed: the :class:`~asm.errors.AsmError` as a value."""

    code: str
    message: str
    retryable: bool = False
    provider_error: ProviderError | None = None
    details: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_error(cls, error: AsmError) -> ErrorInfo:
        """The value form of ``error`` (a ``provider_error`` in its details is lifted out)."""
        details = dict(error.details)
        provider_error = details.pop("provider_error", None)
        return cls(
            code=error.code,
            message=error.message,
            retryable=error.retryable,
            provider_error=provider_error if isinstance(provider_error, ProviderError) else None,
            details=details,
        )

    def to_error(self) -> AsmError:
        """The exception form, e.g. to raise from :meth:`Run.raise_for_status`."""
        details = dict(self.details)
        if self.provider_error is not None:
            details["provider_error"] = self.provider_error
        return AsmError(self.code, self.message, retryable=self.retryable, details=details)


_ROLES = frozenset({"user", "assistant", "system", "tool"})


def _check_role(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in _ROLES:
        raise AsmError(
            "validation_error",
            f"message role {value!r} is not one of {sorted(_ROLES)}; use 'user' for input",
        )


@attrs.frozen
class Message:
    """One message of a conversation."""

    role: str = attrs.field(validator=_check_role)
    content: str


EntryKind = Literal["message", "tool_call", "tool_result", "thinking"]


@attrs.frozen
class Entry:
    """One item of a session's conversation, in order (see :mod:`asm.continuity`).

    ``kind`` is ``message`` (``role`` system, user or assistant, and
    ``content``), ``thinking`` (the assistant's thinking text in ``content``),
    ``tool_call`` (``tool_call_id``, ``tool_name``, ``tool_input``) or
    ``tool_result`` (``tool_call_id``, ``tool_name``, ``tool_output``,
    ``is_error``; ``synthetic`` for one asm made up for an interrupted call).
    ``run_id`` is the run it came from; ``partial`` marks what a run that did
    not complete got to.
    """

    kind: EntryKind
    role: str = "assistant"
    content: str = ""
    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_input: dict[str, Any] = attrs.field(factory=dict)
    tool_output: Any = None
    is_error: bool = False
    synthetic: bool = False
    run_id: str | None = None
    partial: bool = False


#: How a run continues its session's conversation (``execute_run(continuation=...)``):
#: ``auto`` (native resume when the provider that served the session's last run serves this
#: one and gave a resume id, else replay), ``replay`` (the transcript is sent), ``native``
#: (the provider's own resume only), ``none`` (the run starts with no memory).
CONTINUATION_MODES: Final = ("auto", "replay", "native", "none")


def check_continuation(value: object) -> str:
    """``value`` if it is a continuation mode, else a ``validation_error`` naming them.

    >>> check_continuation("replay")
    'replay'
    """
    if value not in CONTINUATION_MODES:
        raise AsmError(
            "validation_error",
            f"continuation {value!r} is not one of {', '.join(CONTINUATION_MODES)}",
            details={"continuation": value},
        )
    return str(value)


#: The continuation of a run executed again after the worker executing it was lost
#: (asm-celery's ``on_worker_lost = "resume"``): a replay that includes the run's own cut
#: attempt, then asks the model to go on from there (:func:`asm.continuity.resume`). A
#: run's mode, set on a stored run; no config or ``start_run`` takes it.
RESUME: Final = "resume"


def _continuation(value: object) -> str | None:
    if value is None or value == RESUME:
        return value
    return check_continuation(value)


@attrs.frozen
class RunInput:
    """What a run is asked to do: the messages, and per-run provider options
    (``model``, ``system_prompt``, ``max_turns``, ...). ``session_id`` and
    ``run_id`` are filled in by the manager before the provider sees it."""

    messages: tuple[Message, ...]
    options: dict[str, Any] = attrs.field(factory=dict)
    session_id: str = ""
    run_id: str = ""
    #: tool names the run's policies deny, and (for an allow-list) the only ones they allow:
    #: set by the manager, for providers whose tools run inside a CLI with flags of its own
    denied_tools: tuple[str, ...] = ()
    allowed_tools: tuple[str, ...] | None = None
    #: capabilities the provider must have (else the run is refused before it starts) and ones
    #: it should have (those it lacks are named in ``run_started``); see :class:`Capabilities`
    required_capabilities: tuple[str, ...] = attrs.field(default=(), converter=_names, validator=_check_capabilities)
    optional_capabilities: tuple[str, ...] = attrs.field(default=(), converter=_names, validator=_check_capabilities)
    #: how the run continues its session (:data:`CONTINUATION_MODES`); ``None``: the manager's default
    continuation: str | None = attrs.field(default=None, converter=_continuation)
    #: the session's conversation before this run, for a provider to send (replay): set by the
    #: manager on the input the provider gets, never stored with the run
    history: tuple[Entry, ...] = ()
    #: the provider's own id of the conversation to resume (native continuation), from the
    #: ``resume_id`` of the session's last run: set by the manager like ``history``
    resume_id: str | None = None

    @property
    def prompt(self) -> str:
        """The content of the last user message ('' if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @classmethod
    def coerce(cls, value: object, *, options: Mapping[str, Any] | None = None) -> RunInput:
        """Accept a prompt string, a list of messages (``Message`` or
        ``{"role", "content"}`` dicts) or a ``RunInput``; reject anything empty.

        >>> RunInput.coerce([{"role": "user", "content": "hi"}]).prompt
        'hi'
        """
        extra = dict(options or {})
        if isinstance(value, RunInput):
            run_input = attrs.evolve(value, options={**value.options, **extra}) if extra else value
        elif isinstance(value, str):
            run_input = cls(messages=(Message("user", value),), options=extra)
        elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            run_input = cls(messages=tuple(_coerce_message(m) for m in value), options=extra)
        else:
            raise AsmError(
                "validation_error",
                f"run input must be a prompt string or a list of messages, not {type(value).__name__}",
            )
        if not any(m.content.strip() for m in run_input.messages):
            raise AsmError("validation_error", "run input is empty; pass a non-empty prompt or message")
        return run_input


def _coerce_message(value: object) -> Message:
    if isinstance(value, Message):
        return value
    if isinstance(value, Mapping):
        role, content = value.get("role", "user"), value.get("content")
        if isinstance(role, str) and isinstance(content, str):
            return Message(role, content)
    raise AsmError(
        "validation_error",
        f"malformed message {value!r}; each message needs a string 'role' and 'content'",
    )


@attrs.frozen
class RunResult:
    """What a provider returns when it finishes a run."""

    output: str = ""
    stop_reason: str | None = None
    usage: TokenUsage = TokenUsage()
    model: str | None = None
    cost: Cost | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    #: the provider's own id of this conversation (a Claude Code session, a Codex thread, an
    #: OpenAI response): a later run of the session on the same provider resumes it (native
    #: continuation); ``None`` for a provider that cannot resume
    resume_id: str | None = None


@attrs.frozen
class ForkPoint:
    """Where a forked session's history came from: the first ``seq`` events of ``session_id``."""

    session_id: str
    seq: int


@attrs.frozen
class Session:
    """A conversation with one agent: a sequence of runs and their events."""

    id: str
    agent_id: str
    status: SessionStatus = attrs.field(default=SessionStatus.PENDING, converter=SessionStatus)
    provider: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    parent_session_id: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    tags: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    #: made by ``run_once`` for one run: it ends with that run (recovery of the run ends it too)
    one_shot: bool = False
    #: for a fork (``SessionStore.fork_session``): the session and seq its history was copied from
    forked_from: ForkPoint | None = None


@attrs.frozen
class ProcessIdentity:
    """One OS process, told apart from a later one that reuses its PID by its start
    time (Linux: clock ticks after boot, from ``/proc``; ``None`` where unknown)."""

    pid: int
    started: int | None = None


@attrs.frozen
class RunOwner:
    """Who executes a running run: the asm process (host, boot, PID and start time)
    and the process groups its provider started, so that recovery can tell a dead
    owner from a reused PID and stop the agent processes it left behind
    (see :mod:`asm.owners`)."""

    host: str
    process: ProcessIdentity
    boot_id: str | None = None
    process_groups: tuple[ProcessIdentity, ...] = ()

    def describe(self) -> str:
        """``pid 4242 on host-a``, for messages."""
        return f"pid {self.process.pid} on {self.host}"


@attrs.frozen
class Run:
    """One request to a provider inside a session, and how it ended.

    ``execute_run`` and ``run_once`` return the final ``Run`` whatever its
    status; :meth:`raise_for_status` turns a failure into its ``AsmError``.
    """

    id: str
    session_id: str
    input: RunInput
    status: RunStatus = attrs.field(default=RunStatus.PENDING, converter=RunStatus)
    provider: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    result: RunResult | None = None
    error: ErrorInfo | None = None
    usage: TokenUsage = TokenUsage()
    #: what the run cost: reported by the provider, else computed from its usage and the pricing
    #: tables; ``None`` when unknown (never a made-up 0)
    cost: Cost | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    #: the model the run used (what its cost was priced by): the one the provider named before
    #: it started (:class:`asm.ports.ModelAware`, else the run's ``model`` option), updated by the
    #: model its events and result report; ``None`` when nobody said
    model: str | None = None
    #: the process executing the run, recorded when it is claimed (``pending -> running``)
    owner: RunOwner | None = None

    @property
    def output(self) -> str:
        """The provider's final output text ('' unless the run completed)."""
        return self.result.output if self.result is not None else ""

    def raise_for_status(self) -> Run:
        """Return ``self`` if the run completed, else raise why it did not.

        >>> run.raise_for_status().output  # doctest: +SKIP
        'Hello!'
        """
        if self.status is RunStatus.COMPLETED:
            return self
        if self.error is not None:
            raise self.error.to_error()
        raise AsmError("invalid_operation", f"run {self.id} is {self.status.value}, not completed")


@attrs.frozen
class Artifact:
    """A stored blob's description (the bytes stay in the ArtifactStore)."""

    key: str
    size: int
    content_type: str | None = None
    sha256: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    metadata: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Page:
    """A page of events read from a store.

    ``cursor`` is the seq to pass as ``after=`` to read the next page: the last
    returned event's seq when the page was cut by ``limit``, else the last seq
    the read examined (so a filtered read skips past events that did not
    match, and an empty page never moves the cursor backwards).
    ``has_more`` says whether more matching events existed when it was read.
    """

    events: tuple[Event, ...]
    cursor: int
    has_more: bool = False
