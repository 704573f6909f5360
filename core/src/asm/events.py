"""The normalized event catalog: one :class:`EventType` per moment, each with a
typed, frozen payload, wrapped in the :class:`Event` envelope.

Providers emit payloads; the manager wraps them into events, the store assigns
``seq``, and only then do callbacks, sinks and subscribers see them::

    await emit(MessageStreamed(delta="Hel"))
    await emit(ToolCallStarted(tool_call_id="t1", tool_name="read", tool_input={"path": "a.py"}))

``PAYLOADS[EventType.MESSAGE_STREAMED] is MessageStreamed``; ``payload.type``
gives the type of a payload.
"""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Final

import attrs

from asm.model import Cost, ProviderError, TokenUsage, _id_time, _ids, _tick

__all__ = [
    "LIFECYCLE_TYPES",
    "PAYLOADS",
    "RUN_END_TYPES",
    "SCHEMA_VERSION",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRequested",
    "ArtifactStored",
    "CircuitClosed",
    "CircuitHalfOpen",
    "CircuitOpened",
    "CostUpdated",
    "ErrorOccurred",
    "ErrorRecovered",
    "Event",
    "EventData",
    "EventType",
    "EventsCompacted",
    "MessageReceived",
    "MessageSent",
    "MessageStreamed",
    "PolicyViolation",
    "ProviderError",
    "RouteFailedOver",
    "RouteSelected",
    "RouteSkip",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunInterrupted",
    "RunQueued",
    "RunStarted",
    "RunRetrying",
    "RunTimeout",
    "SessionCancelled",
    "SessionCompleted",
    "SessionCreated",
    "SessionFailed",
    "SessionPaused",
    "SessionResumed",
    "SessionStarted",
    "ThinkingStreamed",
    "TokenUsageUpdated",
    "TranscriptTruncated",
    "ToolCallCompleted",
    "ToolCallFailed",
    "ToolCallStarted",
    "TurnCompleted",
    "WorkspaceDiffComputed",
    "WorkspaceRolledBack",
    "WorkspaceSnapshotTaken",
    "sequence_in_place",
]

#: Version of the event JSON layout; stored with every event.
SCHEMA_VERSION: Final = 1


class EventType(StrEnum):
    """Every kind of event asm emits."""

    SESSION_CREATED = "session_created"
    SESSION_STARTED = "session_started"
    SESSION_PAUSED = "session_paused"
    SESSION_RESUMED = "session_resumed"
    SESSION_COMPLETED = "session_completed"
    SESSION_FAILED = "session_failed"
    SESSION_CANCELLED = "session_cancelled"
    RUN_QUEUED = "run_queued"
    RUN_STARTED = "run_started"
    MESSAGE_SENT = "message_sent"
    MESSAGE_STREAMED = "message_streamed"
    MESSAGE_RECEIVED = "message_received"
    THINKING_STREAMED = "thinking_streamed"
    TOOL_CALL_STARTED = "tool_call_started"
    TOOL_CALL_COMPLETED = "tool_call_completed"
    TOOL_CALL_FAILED = "tool_call_failed"
    TOKEN_USAGE_UPDATED = "token_usage_updated"
    TURN_COMPLETED = "turn_completed"
    COST_UPDATED = "cost_updated"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_TIMEOUT = "run_timeout"
    RUN_RETRYING = "run_retrying"
    RUN_INTERRUPTED = "run_interrupted"
    POLICY_VIOLATION = "policy_violation"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GRANTED = "approval_granted"
    APPROVAL_DENIED = "approval_denied"
    WORKSPACE_SNAPSHOT_TAKEN = "workspace_snapshot_taken"
    WORKSPACE_DIFF_COMPUTED = "workspace_diff_computed"
    WORKSPACE_ROLLED_BACK = "workspace_rolled_back"
    ARTIFACT_STORED = "artifact_stored"
    ERROR_OCCURRED = "error_occurred"
    ERROR_RECOVERED = "error_recovered"
    TRANSCRIPT_TRUNCATED = "transcript_truncated"
    ROUTE_SELECTED = "route_selected"
    ROUTE_FAILED_OVER = "route_failed_over"
    CIRCUIT_OPENED = "circuit_opened"
    CIRCUIT_HALF_OPEN = "circuit_half_open"
    CIRCUIT_CLOSED = "circuit_closed"
    EVENTS_COMPACTED = "events_compacted"


_T = EventType


class EventData:
    """Base of every payload; ``type`` names the event the payload belongs to."""

    __slots__ = ()
    type: ClassVar[EventType]


# -- session -----------------------------------------------------------------


@attrs.frozen
class SessionCreated(EventData):
    """A session was created (status pending)."""

    type: ClassVar[EventType] = _T.SESSION_CREATED
    agent_id: str
    provider: str | None = None


@attrs.frozen
class SessionStarted(EventData):
    """A session became active."""

    type: ClassVar[EventType] = _T.SESSION_STARTED


@attrs.frozen
class SessionPaused(EventData):
    """A session was paused."""

    type: ClassVar[EventType] = _T.SESSION_PAUSED
    reason: str | None = None


@attrs.frozen
class SessionResumed(EventData):
    """A paused session became active again."""

    type: ClassVar[EventType] = _T.SESSION_RESUMED


@attrs.frozen
class SessionCompleted(EventData):
    """A session ended successfully."""

    type: ClassVar[EventType] = _T.SESSION_COMPLETED


@attrs.frozen
class SessionFailed(EventData):
    """A session ended in failure."""

    type: ClassVar[EventType] = _T.SESSION_FAILED
    error_code: str
    error_message: str
    provider_error: ProviderError | None = None


@attrs.frozen
class SessionCancelled(EventData):
    """A session was cancelled."""

    type: ClassVar[EventType] = _T.SESSION_CANCELLED
    reason: str | None = None


# -- run ---------------------------------------------------------------------


@attrs.frozen
class RunQueued(EventData):
    """A run was queued by a SessionServer; ``position`` counts from 1."""

    type: ClassVar[EventType] = _T.RUN_QUEUED
    position: int = 0


@attrs.frozen
class RunStarted(EventData):
    """A run started executing on ``provider``."""

    type: ClassVar[EventType] = _T.RUN_STARTED
    provider: str
    model: str | None = None
    #: optional capabilities the run asked for that the provider lacks
    missing_capabilities: tuple[str, ...] = ()
    #: how the run continues its session: ``native`` (the provider resumes its own
    #: conversation), ``replay`` (the transcript is sent), ``resume`` (the transcript with
    #: the run's own cut attempt, executed again after its worker was lost) or ``None``
    #: (no earlier conversation)
    continuation: str | None = None


@attrs.frozen
class RunCompleted(EventData):
    """A run finished; ``usage`` is the whole run's."""

    type: ClassVar[EventType] = _T.RUN_COMPLETED
    stop_reason: str | None = None
    usage: TokenUsage = TokenUsage()
    model: str | None = None


@attrs.frozen
class RunFailed(EventData):
    """A run failed; ``provider_error`` says how, when a provider failed."""

    type: ClassVar[EventType] = _T.RUN_FAILED
    error_code: str
    error_message: str
    retryable: bool = False
    provider_error: ProviderError | None = None


@attrs.frozen
class RunCancelled(EventData):
    """A run was cancelled before it finished."""

    type: ClassVar[EventType] = _T.RUN_CANCELLED
    reason: str | None = None


@attrs.frozen
class RunRetrying(EventData):
    """Attempt ``attempt`` of the run failed with ``error_code`` before any output;
    the provider is tried again after ``delay_s`` seconds (see :mod:`asm.retry`)."""

    type: ClassVar[EventType] = _T.RUN_RETRYING
    attempt: int
    delay_s: float
    error_code: str
    error_message: str


@attrs.frozen
class RunInterrupted(EventData):
    """Attempt ``attempt`` of the run stopped with the process executing it, ``owner``
    (e.g. an asm-celery worker killed mid-run); whoever took the run over goes on as
    ``then`` says: ``restart`` (from its input), ``resume`` (from the cut attempt, see
    :func:`asm.continuity.resume`), ``fail`` or ``cancel`` (a cancel was requested)."""

    type: ClassVar[EventType] = _T.RUN_INTERRUPTED
    attempt: int
    owner: str
    then: str


@attrs.frozen
class RunTimeout(EventData):
    """A run exceeded its time limit of ``timeout_s`` seconds."""

    type: ClassVar[EventType] = _T.RUN_TIMEOUT
    timeout_s: float


# -- messages ----------------------------------------------------------------


@attrs.frozen
class MessageSent(EventData):
    """An input message was sent to the provider."""

    type: ClassVar[EventType] = _T.MESSAGE_SENT
    content: str
    role: str = "user"


@attrs.frozen
class MessageStreamed(EventData):
    """A chunk of output text; ``stream`` tags its origin (``stdout``/``stderr`` for shell)."""

    type: ClassVar[EventType] = _T.MESSAGE_STREAMED
    delta: str
    stream: str | None = None


@attrs.frozen
class MessageReceived(EventData):
    """A complete message from the provider."""

    type: ClassVar[EventType] = _T.MESSAGE_RECEIVED
    content: str
    role: str = "assistant"


@attrs.frozen
class ThinkingStreamed(EventData):
    """A chunk of the model's reasoning."""

    type: ClassVar[EventType] = _T.THINKING_STREAMED
    delta: str


# -- tools -------------------------------------------------------------------


@attrs.frozen
class ToolCallStarted(EventData):
    """The model called a tool (command executions and file edits are tools too)."""

    type: ClassVar[EventType] = _T.TOOL_CALL_STARTED
    tool_call_id: str
    tool_name: str
    tool_input: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ToolCallCompleted(EventData):
    """A tool call returned ``tool_output`` (any JSON value)."""

    type: ClassVar[EventType] = _T.TOOL_CALL_COMPLETED
    tool_call_id: str
    tool_name: str
    tool_output: Any = None


@attrs.frozen
class ToolCallFailed(EventData):
    """A tool call failed; the error goes back to the model."""

    type: ClassVar[EventType] = _T.TOOL_CALL_FAILED
    tool_call_id: str
    tool_name: str
    error_message: str


# -- usage and cost ----------------------------------------------------------


@attrs.frozen
class TokenUsageUpdated(EventData):
    """Tokens used since the previous update of this run (they add up to the run's usage)."""

    type: ClassVar[EventType] = _T.TOKEN_USAGE_UPDATED
    usage: TokenUsage
    #: the model these tokens were spent on, when the provider knows it (used for cost)
    model: str | None = None


@attrs.frozen
class TurnCompleted(EventData):
    """A model turn (one request/response round) ended; ``turn`` counts from 1."""

    type: ClassVar[EventType] = _T.TURN_COMPLETED
    turn: int


@attrs.frozen
class CostUpdated(EventData):
    """The run's cost so far."""

    type: ClassVar[EventType] = _T.COST_UPDATED
    cost: Cost
    model: str | None = None


# -- policy and approval -----------------------------------------------------


@attrs.frozen
class PolicyViolation(EventData):
    """A policy was violated; ``action`` is what asm did about it."""

    type: ClassVar[EventType] = _T.POLICY_VIOLATION
    policy: str
    kind: str
    action: str
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ApprovalRequested(EventData):
    """A tool call waits for approval."""

    type: ClassVar[EventType] = _T.APPROVAL_REQUESTED
    tool_call_id: str
    tool_name: str
    tool_input: dict[str, Any] = attrs.field(factory=dict)
    policy: str | None = None


@attrs.frozen
class ApprovalGranted(EventData):
    """A tool call was approved."""

    type: ClassVar[EventType] = _T.APPROVAL_GRANTED
    tool_call_id: str
    tool_name: str


@attrs.frozen
class ApprovalDenied(EventData):
    """A tool call was denied."""

    type: ClassVar[EventType] = _T.APPROVAL_DENIED
    tool_call_id: str
    tool_name: str
    reason: str | None = None


# -- workspace and artifacts -------------------------------------------------


@attrs.frozen
class WorkspaceSnapshotTaken(EventData):
    """A snapshot of the working directory was taken."""

    type: ClassVar[EventType] = _T.WORKSPACE_SNAPSHOT_TAKEN
    label: str
    backend: str
    ref: str


@attrs.frozen
class WorkspaceDiffComputed(EventData):
    """The working directory changed by this much during the run."""

    type: ClassVar[EventType] = _T.WORKSPACE_DIFF_COMPUTED
    files_changed: int
    insertions: int = 0
    deletions: int = 0
    patch_ref: str | None = None


@attrs.frozen
class WorkspaceRolledBack(EventData):
    """The working directory was put back as it was at snapshot ``ref`` (``paths``
    restored or removed), because the run ended ``outcome``."""

    type: ClassVar[EventType] = _T.WORKSPACE_ROLLED_BACK
    ref: str
    outcome: str
    paths: tuple[str, ...] = ()


@attrs.frozen
class ArtifactStored(EventData):
    """A blob was stored in the artifact store under ``key``."""

    type: ClassVar[EventType] = _T.ARTIFACT_STORED
    key: str
    size: int
    content_type: str | None = None


# -- errors ------------------------------------------------------------------


@attrs.frozen
class ErrorOccurred(EventData):
    """An error that did not (yet) end the run."""

    type: ClassVar[EventType] = _T.ERROR_OCCURRED
    error_code: str
    error_message: str
    provider_error: ProviderError | None = None


@attrs.frozen
class ErrorRecovered(EventData):
    """A previous error was recovered from (e.g. by a retry or failover)."""

    type: ClassVar[EventType] = _T.ERROR_RECOVERED
    error_code: str
    message: str | None = None


@attrs.frozen
class TranscriptTruncated(EventData):
    """The session's transcript was over the run's token budget: its oldest whole turns
    (``dropped`` entries, ``dropped_turns`` turns) were left out of what the provider is sent;
    ``tokens`` is the estimate of what was kept (with the run's own input), against ``budget``."""

    type: ClassVar[EventType] = _T.TRANSCRIPT_TRUNCATED
    dropped: int
    dropped_turns: int
    kept: int
    tokens: int
    budget: int


# -- routing (the router provider, asm-router) -------------------------------


@attrs.frozen
class RouteSkip:
    """A member a router passed over for an attempt: ``reason`` is a code
    (``circuit_open``, ``probe_in_flight``, ``missing_capability``, ``over_budget``,
    ``tried``) and ``detail`` says it in words."""

    member: str
    reason: str
    detail: str = ""


@attrs.frozen
class RouteSelected(EventData):
    """Router ``router`` gave attempt ``attempt`` (from 1) to ``member`` because of
    ``reason`` (``sticky``, ``preferred``, ``weighted``, ``probe``); ``skipped`` lists
    the members it passed over and why."""

    type: ClassVar[EventType] = _T.ROUTE_SELECTED
    router: str
    member: str
    reason: str
    attempt: int = 1
    model: str | None = None
    skipped: tuple[RouteSkip, ...] = ()


@attrs.frozen
class RouteFailedOver(EventData):
    """``member`` failed attempt ``attempt`` with a retryable ``error_code`` before
    any output, so router ``router`` tries another member."""

    type: ClassVar[EventType] = _T.ROUTE_FAILED_OVER
    router: str
    member: str
    attempt: int
    error_code: str
    error_message: str


@attrs.frozen
class CircuitOpened(EventData):
    """``member``'s circuit (for ``model``, when the member was asked for one) opened
    after ``failures`` failures: it gets no run for ``cooldown_s`` seconds."""

    type: ClassVar[EventType] = _T.CIRCUIT_OPENED
    router: str
    member: str
    model: str | None
    failures: int
    cooldown_s: float
    error_code: str


@attrs.frozen
class CircuitHalfOpen(EventData):
    """``member``'s cooldown is over: this run is the one probe that decides
    whether its circuit closes again or reopens."""

    type: ClassVar[EventType] = _T.CIRCUIT_HALF_OPEN
    router: str
    member: str
    model: str | None = None


@attrs.frozen
class CircuitClosed(EventData):
    """``member``'s probe run succeeded: it takes runs again."""

    type: ClassVar[EventType] = _T.CIRCUIT_CLOSED
    router: str
    member: str
    model: str | None = None


# -- storage -----------------------------------------------------------------


@attrs.frozen
class EventsCompacted(EventData):
    """A store compacted ``count`` redundant ``message_streamed`` deltas of run
    ``run_id`` (it stored their ``message_received``): seqs ``first_seq`` to
    ``last_seq`` are gone from the log but this marker, which sits at ``last_seq``
    (see ``SessionStore.compact_events`` and docs/continuity.md)."""

    type: ClassVar[EventType] = _T.EVENTS_COMPACTED
    first_seq: int
    last_seq: int
    count: int
    run_id: str | None = None


PAYLOADS: Final[dict[EventType, type[EventData]]] = {
    cls.type: cls
    for cls in (
        SessionCreated,
        SessionStarted,
        SessionPaused,
        SessionResumed,
        SessionCompleted,
        SessionFailed,
        SessionCancelled,
        RunQueued,
        RunStarted,
        MessageSent,
        MessageStreamed,
        MessageReceived,
        ThinkingStreamed,
        ToolCallStarted,
        ToolCallCompleted,
        ToolCallFailed,
        TokenUsageUpdated,
        TurnCompleted,
        CostUpdated,
        RunCompleted,
        RunFailed,
        RunCancelled,
        RunTimeout,
        RunRetrying,
        RunInterrupted,
        PolicyViolation,
        ApprovalRequested,
        ApprovalGranted,
        ApprovalDenied,
        WorkspaceSnapshotTaken,
        WorkspaceDiffComputed,
        WorkspaceRolledBack,
        ArtifactStored,
        ErrorOccurred,
        ErrorRecovered,
        TranscriptTruncated,
        RouteSelected,
        RouteFailedOver,
        CircuitOpened,
        CircuitHalfOpen,
        CircuitClosed,
        EventsCompacted,
    )
}

#: Types only the manager emits: a provider that emits one is failed.
#: The types that end a run: exactly one of them is a run's last event.
RUN_END_TYPES: Final = frozenset({_T.RUN_COMPLETED, _T.RUN_FAILED, _T.RUN_CANCELLED, _T.RUN_TIMEOUT})

LIFECYCLE_TYPES: Final = frozenset(
    {t for t in EventType if t.value.startswith("session_")} | {_T.RUN_QUEUED, _T.RUN_STARTED} | RUN_END_TYPES
)


@attrs.frozen
class Event:
    """One durable, ordered fact about a session.

    ``seq`` is ``None`` until a store assigns it (1, 2, 3, ... per session);
    ``at`` is when it happened (to the millisecond, the one its id was made in, for
    the events asm makes); ``data`` is the typed payload, and ``type`` comes from it.
    """

    id: str
    session_id: str
    run_id: str | None
    data: EventData
    at: datetime
    seq: int | None = None
    provider: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def type(self) -> EventType:
        """The event's type, from its payload."""
        return self.data.type

    @classmethod
    def new(
        cls,
        data: EventData,
        *,
        session_id: str,
        run_id: str | None = None,
        provider: str | None = None,
    ) -> Event:
        """A fresh, unsequenced event with a new id and the current time.

        >>> Event.new(MessageStreamed(delta="hi"), session_id="ses_1").type
        <EventType.MESSAGE_STREAMED: 'message_streamed'>
        """
        return _fresh_event(session_id, run_id, data, provider)

    def with_seq(self, seq: int) -> Event:
        """This event as stored at ``seq`` (stores call this)."""
        return _build(
            self.id, self.session_id, self.run_id, self.data, self.at, seq, self.provider, self.schema_version
        )


def _unfrozen(cls: type) -> type[Any]:
    """A subclass of the frozen slotted attrs class ``cls`` that adds no slot and lets its
    fields be assigned: an instance is filled in by plain attribute assignment (which the
    interpreter specialises to a slot store) and then made a ``cls`` by setting its
    ``__class__``, the same object ``cls(...)`` builds when its ``__init__`` only sets the
    fields. That costs a third of setting each slot through its descriptor (and a quarter
    of attrs' frozen ``__init__``, which calls ``object.__setattr__`` per field).
    (``__delattr__`` too: a class overriding either one gets the generic, slow setter.)"""
    return type(
        f"_{cls.__name__}Builder",
        (cls,),
        {"__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__},
    )


_EventBuilder: Final = _unfrozen(Event)
_SET_SEQ: Final = Event.__dict__["seq"].__set__
_new_object = object.__new__
_time_ns = time.time_ns
#: :func:`sequence_in_place` without the call around it (asm's in-memory store, per event).
_set_seq_in_place: Final = _SET_SEQ


def sequence_in_place(event: Event, seq: int) -> Event:
    """``event`` itself with its ``seq`` set, for a store whose caller gave the events up
    (:class:`asm.ports.OwnedAppend`): nobody else holds them, so no copy is needed.
    Anywhere else, use ``event.with_seq(seq)``: events are values.

    >>> event = Event.new(MessageStreamed("hi"), session_id="ses_1")
    >>> sequence_in_place(event, 7) is event and event.seq == 7
    True
    """
    _SET_SEQ(event, seq)
    return event


def _fresh_event(session_id: str, run_id: str | None, data: EventData, provider: str | None) -> Event:
    """``Event.new(data, session_id=..., run_id=..., provider=...)`` with positional
    arguments: the manager makes one per event it records. ``new_id("evt")`` and
    :func:`_build` inlined, since this is the most frequent call on the event path; the
    event's time is the millisecond its id was made in (one reading of the clock)."""
    ms = _time_ns() // 1_000_000
    stamp = _id_time[0]
    if stamp[0] != ms:
        stamp = _tick(ms)
    event = _new_object(_EventBuilder)
    event.id = "evt" + stamp[1] + _ids[0]().to_bytes(10, "big").hex()
    event.session_id = session_id
    event.run_id = run_id
    event.data = data
    event.at = stamp[2]
    event.seq = None
    event.provider = provider
    event.schema_version = SCHEMA_VERSION
    event.__class__ = Event
    return event  # type: ignore[no-any-return]


def _build(
    id: str,
    session_id: str,
    run_id: str | None,
    data: EventData,
    at: datetime,
    seq: int | None,
    provider: str | None,
    schema_version: int,
) -> Event:
    """``Event(...)`` as attrs builds it (see :func:`_unfrozen`; Event has no validators or
    converters to run)."""
    event = _new_object(_EventBuilder)
    event.id = id
    event.session_id = session_id
    event.run_id = run_id
    event.data = data
    event.at = at
    event.seq = seq
    event.provider = provider
    event.schema_version = schema_version
    event.__class__ = Event
    return event  # type: ignore[no-any-return]
