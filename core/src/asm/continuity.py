"""Session continuity: a session's conversation, rebuilt from its event log.

::

    transcript = await transcript(store, session_id)
    for entry in transcript.entries:
        print(entry.kind, entry.role, entry.content or entry.tool_name)

The transcript is what the next run of the session needs to remember: the
system and user messages (``message_sent``), the assistant's answers
(``message_received``, not the deltas), each tool call with its result
(``tool_call_started`` + ``tool_call_completed`` / ``tool_call_failed``) and
the thinking text. Every run counts: a completed run fully; a run that failed,
was cancelled or timed out with what it got to, marked ``partial`` (its
streamed text stands in for the answer it never finished).

**Tool-pair integrity.** A transcript never holds a tool call without its
result nor a result without its call — an API rejects a request with either.
A call left open (the run was cancelled or crashed mid-tool) gets a synthetic
result, ``{"error": "tool call was interrupted"}`` flagged ``synthetic``, in
the place the result belongs (before anything else the run said); a result
whose call is unknown is dropped and reported in ``Transcript.dropped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

import attrs

from asm.events import (
    RUN_END_TYPES,
    Event,
    EventType,
    MessageReceived,
    MessageSent,
    MessageStreamed,
    ThinkingStreamed,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.ports import SessionStore

__all__ = ["INTERRUPTED", "Entry", "Transcript", "build_transcript", "transcript"]

EntryKind = Literal["message", "tool_call", "tool_result", "thinking"]

#: The output of a synthetic result for a tool call that never got one.
INTERRUPTED: Final = {"error": "tool call was interrupted"}

#: What a transcript is read from (token usage, costs and the rest are not read at all).
TRANSCRIPT_TYPES: Final = (
    EventType.RUN_STARTED,
    *sorted(RUN_END_TYPES),
    EventType.MESSAGE_SENT,
    EventType.MESSAGE_RECEIVED,
    EventType.MESSAGE_STREAMED,
    EventType.THINKING_STREAMED,
    EventType.TOOL_CALL_STARTED,
    EventType.TOOL_CALL_COMPLETED,
    EventType.TOOL_CALL_FAILED,
)


@attrs.frozen
class Entry:
    """One item of a conversation, in order.

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


@attrs.frozen
class Transcript:
    """A session's conversation up to ``upto`` (a seq), ready to send again.

    ``dropped`` names the tool results that had no call (left out), and
    ``repaired`` the calls that had no result (given a synthetic one)."""

    session_id: str
    entries: tuple[Entry, ...] = ()
    upto: int = 0
    dropped: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()

    @property
    def messages(self) -> tuple[Entry, ...]:
        """The ``message`` entries only (system, user, assistant text)."""
        return tuple(entry for entry in self.entries if entry.kind == "message")


class _Builder:
    """Folds a session's events, in seq order, into entries."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.dropped: list[str] = []
        self.repaired: list[str] = []
        self._open: dict[str, Entry] = {}  # tool calls waiting for their result
        self._runs: dict[str, _Run] = {}

    def add(self, event: Event) -> None:
        data, run_id = event.data, event.run_id
        run = self._runs.setdefault(run_id or "", _Run(len(self.entries)))
        if isinstance(data, MessageSent | MessageReceived):
            self._close_calls()
            if isinstance(data, MessageReceived):
                self._flush_thinking(run, run_id)
                run.answered = True
            self.entries.append(Entry("message", data.role, data.content, run_id=run_id))
        elif isinstance(data, MessageStreamed):
            if data.stream is None:  # stdout/stderr of a command are not the answer
                run.streamed.append(data.delta)
        elif isinstance(data, ThinkingStreamed):
            run.thinking.append(data.delta)
        elif isinstance(data, ToolCallStarted):
            self._flush_thinking(run, run_id)
            if data.tool_call_id in self._open:  # the same id again: the first call never got its result
                self._close_calls()
            call = Entry(
                "tool_call",
                tool_call_id=data.tool_call_id,
                tool_name=data.tool_name,
                tool_input=dict(data.tool_input),
                run_id=run_id,
            )
            self._open[data.tool_call_id] = call
            self.entries.append(call)
        elif isinstance(data, ToolCallCompleted | ToolCallFailed):
            if self._open.pop(data.tool_call_id, None) is None:
                self.dropped.append(data.tool_call_id)
                return
            failed = isinstance(data, ToolCallFailed)
            self.entries.append(
                Entry(
                    "tool_result",
                    "tool",
                    tool_call_id=data.tool_call_id,
                    tool_name=data.tool_name,
                    tool_output=data.error_message if isinstance(data, ToolCallFailed) else data.tool_output,
                    is_error=failed,
                    run_id=run_id,
                )
            )
        elif event.type in RUN_END_TYPES:
            self._end_run(run, run_id, completed=event.type is EventType.RUN_COMPLETED)

    def _flush_thinking(self, run: _Run, run_id: str | None) -> None:
        text = "".join(run.thinking)
        run.thinking.clear()
        if text:
            self._close_calls()  # thinking starts a new turn: the last one's calls are over
            self.entries.append(Entry("thinking", content=text, run_id=run_id))

    def _close_calls(self) -> None:
        """A result belongs right after its call's turn: calls still open when anything
        else is said get a synthetic one there."""
        for call_id, call in self._open.items():
            self.repaired.append(call_id)
            self.entries.append(
                Entry(
                    "tool_result",
                    "tool",
                    tool_call_id=call_id,
                    tool_name=call.tool_name,
                    tool_output=dict(INTERRUPTED),
                    is_error=True,
                    synthetic=True,
                    run_id=call.run_id,
                )
            )
        self._open.clear()

    def _end_run(self, run: _Run, run_id: str | None, *, completed: bool) -> None:
        run.ended = True
        self._close_calls()
        if not completed and not run.answered and run.streamed:
            self.entries.append(Entry("message", "assistant", "".join(run.streamed), run_id=run_id))
        self._flush_thinking(run, run_id)
        run.streamed.clear()
        if not completed:  # what the run got to counts, marked: it did not finish
            self.entries[run.start :] = [
                attrs.evolve(e, partial=True) if e.run_id == run_id else e for e in self.entries[run.start :]
            ]

    def finish(self) -> None:
        """The log ends: a run still going (or cut by ``upto``) counts as partial."""
        for run_id, run in self._runs.items():
            if run_id and not run.ended:
                self._end_run(run, run_id, completed=False)
        self._close_calls()


@attrs.define
class _Run:
    start: int  # where its entries begin
    answered: bool = False
    ended: bool = False
    streamed: list[str] = attrs.field(factory=list)
    thinking: list[str] = attrs.field(factory=list)


def build_transcript(session_id: str, events: Iterable[Event], *, upto: int | None = None) -> Transcript:
    """The transcript of ``events`` (a session's, in seq order), up to seq ``upto``."""
    builder = _Builder()
    last = 0
    for event in events:
        if upto is not None and event.seq is not None and event.seq > upto:
            break
        last = event.seq or last
        builder.add(event)
    builder.finish()
    return Transcript(session_id, tuple(builder.entries), last, tuple(builder.dropped), tuple(builder.repaired))


async def transcript(store: SessionStore, session_id: str, *, upto: int | None = None) -> Transcript:
    """Rebuild the conversation of ``session_id`` from ``store`` (see the module docstring).

    >>> t = await transcript(store, session.id)  # doctest: +SKIP
    >>> [(e.role, e.content) for e in t.messages]  # doctest: +SKIP
    [('user', 'hello'), ('assistant', 'hi!')]
    """
    events: list[Event] = []
    after = 0
    while True:
        page = await store.read_events(session_id, after=after, before=_before(upto), types=TRANSCRIPT_TYPES)
        events.extend(page.events)
        if not page.has_more:
            break
        after = page.cursor
    return build_transcript(session_id, events, upto=upto)


def _before(upto: int | None) -> int | None:
    return None if upto is None else upto + 1
