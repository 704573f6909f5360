"""The port protocols every plugin implements.

A plugin's object only has to have the right methods (``typing.Protocol``);
it never subclasses anything from asm. The contract suites in
:mod:`asm.testing` check behaviour, not just shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from asm.cost import Pricing
from asm.events import Event, EventData, EventType
from asm.model import Artifact, Capabilities, Page, Run, RunInput, RunResult, Session
from asm.states import RunStatus, SessionStatus

if TYPE_CHECKING:
    from asm.stores import Compaction

__all__ = [
    "ArtifactStore",
    "BudgetView",
    "Emit",
    "EventCallback",
    "Maintenance",
    "ModelAware",
    "OwnedAppend",
    "Provider",
    "PubSub",
    "QueryAPI",
    "Renderer",
    "SessionStore",
    "Sink",
]


class Emit(Protocol):
    """What a provider calls for each normalized event payload.

    It returns once the event is accepted into the bounded write queue (it
    waits only when that queue is full: that is the backpressure).
    """

    #: The run's limits for error text (``error_text_max_bytes`` / ``_lines`` in config):
    #: a provider that keeps a process's stderr cuts it to these.
    error_text_max_bytes: int
    error_text_max_lines: int

    async def __call__(self, data: EventData, /) -> None: ...

    async def request_approval(self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any]) -> bool:
        """Ask whether a tool call may run: emits ``approval_requested``, asks the
        ``asm_approve_tool`` hook, emits ``approval_granted`` or ``approval_denied``
        and returns the answer (denied when no hook answers)."""
        ...

    async def authorize_tool(
        self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any], *, default: str = "allow"
    ) -> bool:
        """May this tool call run? A provider that runs tools itself calls this
        before emitting ``tool_call_started``: the run's policies decide (deny →
        refused, ask → :meth:`request_approval`), and where they say nothing,
        ``default`` (the provider's permission mode: ``allow``, ``ask``, ``deny``)."""
        ...


@runtime_checkable
class BudgetView(Protocol):
    """What the manager's ``emit`` also tells a provider that chooses by cost (the
    ``router`` provider of asm-router skips a member whose estimated cost exceeds
    the budget left). Optional: an ``emit`` built elsewhere (a test's) may lack it,
    so check with ``isinstance(emit, BudgetView)``.

    >>> async def execute(self, run, emit):  # doctest: +SKIP
    ...     if isinstance(emit, BudgetView) and emit.pricing is not None:
    ...         left = emit.remaining_cost_usd()  # None: no cost limit in force
    """

    @property
    def pricing(self) -> Pricing | None:
        """The runtime's pricing tables; ``None`` when cost tracking is off."""
        ...

    def remaining_cost_usd(self) -> Decimal | None:
        """The run's cost budget left: the tightest ``max_cost_usd`` of the policies
        in force less what the run has cost so far; ``None`` when no policy limits cost."""
        ...


#: An ``on_event`` callback: sync or async, called after the store acknowledged the event.
EventCallback = Callable[[Event], Awaitable[None] | None]


@runtime_checkable
class Provider(Protocol):
    """An AI provider (API, CLI, anything) that executes runs.

    ``execute`` calls ``await emit(payload)`` for every normalized event and
    returns the final :class:`~asm.model.RunResult`. It raises
    :class:`~asm.errors.AsmError` to fail the run (``provider_*`` codes, with
    ``details["provider_error"]`` a :class:`~asm.model.ProviderError`). The
    manager emits the run lifecycle events (``run_started``, ``run_completed``,
    ...) itself; a provider emits content only. Cancellation is trio
    cancellation: when the run's cancel scope is cancelled, ``execute`` must stop
    promptly and leave no process, socket or task behind.

    A provider that knows which model a run will use before it starts (its
    own config's ``model``) also has :meth:`ModelAware.model_for`; one that
    learns it during the run names it on ``token_usage_updated`` /
    ``cost_updated`` and in ``RunResult.model``.
    """

    name: str

    def capabilities(self) -> Capabilities:
        """What this provider supports."""
        ...

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run ``run`` to completion, emitting events as they happen."""
        ...


@runtime_checkable
class ModelAware(Protocol):
    """What a :class:`Provider` may add: the model a run will use, before it starts.

    The manager asks once per run and uses the answer for ``run_started.model``,
    for pricing tokens reported without a model, and for ``Run.model``; a model
    the provider names later (on ``token_usage_updated``, ``cost_updated``,
    ``RunResult.model``) replaces it. A provider without ``model_for`` is asked
    nothing: the run's ``model`` option is used. It is optional so that
    providers written before it keep working (``isinstance(p, Provider)``
    does not require it).
    """

    def model_for(self, run: RunInput) -> str | None:
        """The model ``run`` will use: its ``model`` option if the provider takes
        one, else the provider's configured default; ``None`` when only the
        provider's service or CLI decides. Cheap and without I/O; raising an
        ``AsmError`` (e.g. ``invalid_input``) fails the run before it starts."""
        ...


@runtime_checkable
class SessionStore(Protocol):
    """Durable sessions, runs and the per-session event log.

    ``append_events`` assigns ``seq`` atomically (1, 2, 3, ... per session,
    gap-free, even with several writer processes) and returns the events as
    stored; an event whose id is already stored is returned as first stored,
    not appended twice.
    """

    async def save_session(self, session: Session) -> None:
        """Insert or replace a session."""
        ...

    async def get_session(self, session_id: str) -> Session:
        """The session, or ``AsmError(code="session_not_found")``."""
        ...

    async def list_sessions(
        self,
        *,
        status: SessionStatus | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Session]:
        """Sessions, newest first, filtered by status and agent."""
        ...

    async def delete_session(self, session_id: str) -> None:
        """Delete a session with its runs and events (no error if missing)."""
        ...

    async def save_run(self, run: Run) -> None:
        """Insert or replace a run."""
        ...

    async def claim_run(self, run: Run) -> None:
        """Save ``run`` — a run moving ``pending -> running`` — only if the stored
        copy is still ``pending``: an atomic compare-and-set, so that of several
        processes executing the same run exactly one runs it. Otherwise raise
        :func:`asm.stores.claim_refused`'s ``invalid_operation`` (the run is
        already running, naming its owner, or has ended) and change nothing."""
        ...

    async def get_run(self, run_id: str) -> Run:
        """The run, or ``AsmError(code="run_not_found")``."""
        ...

    async def list_runs(self, session_id: str, *, status: RunStatus | None = None) -> list[Run]:
        """A session's runs, oldest first."""
        ...

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Store events (in order), assigning each its session's next seq."""
        ...

    async def fork_session(self, session_id: str, *, at_seq: int) -> Session:
        """A new ``pending`` session whose history is the first ``at_seq`` events of
        ``session_id`` (seq 1..at_seq, new event ids, ``forked_from`` recorded; a
        compacted range is its one marker, so the fork has fewer seqs); the
        original is untouched. ``session_not_found``, or ``validation_error`` for an
        ``at_seq`` outside 1..latest seq. :func:`asm.stores.fork_by_copy` does it
        for any store."""
        ...

    async def compact_events(self, session_id: str, *, older_than: datetime | None = None) -> Compaction:
        """Replace the redundant ``message_streamed`` deltas of ``session_id`` - those
        of ended runs whose ``message_received`` is stored (with ``older_than``, runs
        that ended before it) - by ``events_compacted`` markers: each range of one
        run's deltas (:func:`asm.stores.plan_compaction`) keeps one event, the marker
        at its last seq, and the others are deleted. No seq changes; a reader paging
        from any cursor sees each event or a marker covering it, never a gap nothing
        accounts for, never an event twice. At most :data:`asm.stores.COMPACT_BATCH`
        deltas per transaction, safe while others append and read; running it again
        finds nothing more. ``session_not_found`` for an unknown session."""
        ...

    async def read_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        types: Iterable[EventType | str] | None = None,
        run_id: str | None = None,
    ) -> Page:
        """A page of events with ``after < seq < before``, oldest first (a ``types``
        filter with ``message_streamed`` also returns ``events_compacted``)."""
        ...

    async def wait_for_events(
        self,
        session_id: str,
        *,
        after: int,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> Page:
        """Long-poll: the events after ``after`` as soon as there are any, or
        an empty page when ``timeout`` seconds pass first."""
        ...

    async def latest_seq(self, session_id: str) -> int:
        """The highest seq stored for the session (0 if none)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


@runtime_checkable
class OwnedAppend(Protocol):
    """What a :class:`SessionStore` may add: ``append_events`` of events the caller
    gives up.

    A run's write queue holds the only references to the fresh events it hands over
    (new ids, never appended before; no ``asm_transform_event`` hook could have kept
    one), so a store offering this may set each event's ``seq`` in place
    (``asm.events.sequence_in_place``) once they are stored, and return those very
    objects, instead of a copy of each; everything else is as ``append_events``. The
    manager uses it only when it is defined in the same class as the
    ``append_events`` in effect: a subclass that overrides ``append_events`` alone
    gets every event through its override.

    ``on_taken``, when given, may be called (on the event loop's thread) once the store
    has turned the events into what it sends to its database and only waits on it: the
    write queue holds its provider back until then, or until the append returns, so a
    store working in a thread is not kept from the interpreter by a provider streaming
    into the queue meanwhile (on a 2-core machine, a fifth of a SQLite run's time).
    """

    async def append_owned_events(
        self, events: Sequence[Event], on_taken: Callable[[], object] | None = None
    ) -> list[Event]:
        """``append_events(events)``; the events may be sequenced in place."""
        ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Blobs by key (workspace patches, large tool outputs, files).

    Keys are ``/``-separated relative paths; ``..``, absolute paths,
    backslashes and control characters are refused with ``validation_error``
    (see :func:`asm.stores.validate_artifact_key`).
    """

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterator[bytes],
        *,
        content_type: str | None = None,
    ) -> Artifact:
        """Store ``data`` (bytes, or an async iterator of chunks for large blobs)."""
        ...

    async def get(self, key: str) -> bytes:
        """The whole blob, or ``AsmError(code="artifact_not_found")``."""
        ...

    def open_read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob as chunks, for blobs too large to hold at once."""
        ...

    async def stat(self, key: str) -> Artifact:
        """The blob's description without its bytes."""
        ...

    async def delete(self, key: str) -> None:
        """Delete a blob (no error if missing)."""
        ...

    async def list(self, prefix: str = "") -> list[Artifact]:
        """Blobs whose key starts with ``prefix``, sorted by key."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class QueryAPI(Protocol):
    """Cross-session search and aggregates (stores that can, implement it)."""

    async def search_sessions(self, **filters: Any) -> list[Session]:
        """Sessions matching ``agent_id``, ``status``, ``provider``, time window."""
        ...

    async def usage_summary(self, **filters: Any) -> dict[str, Any]:
        """Token and cost totals grouped as asked."""
        ...

    async def search_events(self, **filters: Any) -> list[Event]:
        """Events across sessions by type and text."""
        ...


@runtime_checkable
class Maintenance(Protocol):
    """Housekeeping for durable stores."""

    async def apply_retention(self, *, max_age_days: float) -> dict[str, int]:
        """Delete what is older than ``max_age_days``; counts of what went."""
        ...

    async def health_check(self) -> list[str]:
        """Problems found (empty when healthy)."""
        ...

    async def recover_interrupted_runs(self) -> list[str]:
        """Mark runs left ``running`` by a dead process as failed; their ids."""
        ...


@runtime_checkable
class Renderer(Protocol):
    """Turns events into text for people (``compact``, ``verbose``, ...)."""

    def render(self, event: Event) -> str:
        """Text for one event ('' for none)."""
        ...

    def finish(self) -> str:
        """Text to write when the stream ends."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Where rendered text and events go (a file, JSONL, a callback, pub/sub)."""

    async def write(self, text: str, event: Event | None) -> None:
        """Write one event and its rendered text; ``event`` is ``None`` for the
        renderer's closing text at the end of the stream."""
        ...

    async def aclose(self) -> None:
        """Flush and close."""
        ...


@runtime_checkable
class PubSub(Protocol):
    """Fan events out to subscribers, in this process or others.

    asm publishes each session's events on ``asm.session.<session_id>``
    (:func:`asm.session_topic`), only after the store acknowledged them.
    Delivery is live only: a subscriber sees what is published while it is
    subscribed; for history with no gap, use a durable subscription
    (:func:`asm.open_subscription`), which reads the store.
    """

    async def publish(self, topic: str, event: Event) -> None:
        """Publish ``event`` on ``topic``; never waits for a slow subscriber."""
        ...

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """``async with pubsub.subscribe(topic) as events``: the events
        published on ``topic`` from when the block is entered until it ends."""
        ...
