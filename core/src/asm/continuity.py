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
was cancelled or timed out with what it got to, marked ``partial``. A run that
never sent a ``message_received`` (it only streamed, or it stopped first) has its
streamed text stand in for the answer.

**Tool-pair integrity.** A transcript never holds a tool call without its
result nor a result without its call — an API rejects a request with either.
A call left open (the run was cancelled or crashed mid-tool) gets a synthetic
result, ``{"error": "tool call was interrupted"}`` flagged ``synthetic``, in
the place the result belongs (before anything else the run said); a result
whose call is unknown is dropped and reported in ``Transcript.dropped``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

import attrs

from asm.errors import AsmError
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
    TranscriptTruncated,
)
from asm.model import RESUME, Entry, Message, Run, RunInput, check_continuation
from asm.ports import SessionStore

__all__ = [
    "INTERRUPTED",
    "RESUME_PROMPT",
    "Continuation",
    "Entry",
    "Exchange",
    "Folded",
    "Transcript",
    "TranscriptCache",
    "build_transcript",
    "estimate_tokens",
    "exchanges",
    "fit",
    "plan",
    "render_preamble",
    "replay",
    "replay_prompt",
    "resume",
    "system_texts",
    "tool_output_text",
    "transcript",
    "wire_tool_id",
]

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

    def __init__(self, folded: Folded | None = None) -> None:
        self.entries: list[Entry] = list(folded.entries) if folded is not None else []
        self.dropped: list[str] = list(folded.dropped) if folded is not None else []
        self.repaired: list[str] = list(folded.repaired) if folded is not None else []
        self._open: dict[str, Entry] = {}  # tool calls waiting for their result
        self._runs: dict[str, _Run] = {}

    def fold(self, upto: int) -> Folded | None:
        """What the events up to seq ``upto`` made, to go on from later, if nothing is
        pending: every run ended, no call open, no text held back. ``None`` otherwise."""
        if self._open or any(
            (run_id and not run.ended) or run.streamed or run.thinking for run_id, run in self._runs.items()
        ):
            return None
        return Folded(upto, tuple(self.entries), tuple(self.dropped), tuple(self.repaired))

    def add_all(self, events: Iterable[Event], upto: int | None, last: int = 0) -> int:
        """Add ``events`` (in seq order) up to seq ``upto``; the last seq added (else ``last``)."""
        for event in events:
            if upto is not None and event.seq is not None and event.seq > upto:
                break
            last = event.seq or last
            self.add(event)
        return last

    def add(self, event: Event) -> None:
        data, run_id = event.data, event.run_id
        run = self._runs.setdefault(run_id or "", _Run(len(self.entries)))
        asked = [call for call in self._open.values() if call.run_id == run_id]
        if isinstance(data, MessageReceived) and asked and not run.thinking:
            # The text of the turn that asked for these calls: an HTTP provider tells it when the
            # turn's stream ends, after the calls started and before their results. It goes before them.
            run.answered = True
            self.entries.insert(self._turn_start(), Entry("message", data.role, data.content, run_id=run_id))
        elif isinstance(data, MessageSent | MessageReceived):
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
            if data.tool_call_id in self._open or (self.entries and self.entries[-1].kind == "tool_result"):
                # The same id again (the first call never got its result), or a call after results: a
                # new turn, and an API wants every call of a turn answered before the next one starts.
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

    def _turn_start(self) -> int:
        """Where the last turn's calls begin: the calls and results at the end of the
        entries, back to the first call after anything else or after a result (a call after
        results starts a new turn). Some of the turn's calls may be answered already."""
        entries = self.entries
        first = len(entries)
        while first > 0 and entries[first - 1].kind in ("tool_call", "tool_result"):
            if first < len(entries) and entries[first - 1].kind == "tool_result" and entries[first].kind == "tool_call":
                break
            first -= 1
        return first

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
        streamed = "".join(run.streamed)
        if not run.answered and streamed:  # a provider that only streamed: its text is the answer
            self.entries.append(Entry("message", "assistant", streamed, run_id=run_id))
        self._flush_thinking(run, run_id)
        run.streamed.clear()
        if not completed:  # what the run got to counts, marked: it did not finish
            self.entries[run.start :] = [
                attrs.evolve(e, partial=True) if e.run_id == run_id else e for e in self.entries[run.start :]
            ]

    def finish(self, session_id: str, upto: int) -> Transcript:
        """The log ends (at seq ``upto``): a run still going (or cut there) counts as partial."""
        for run_id, run in self._runs.items():
            if run_id and not run.ended:
                self._end_run(run, run_id, completed=False)
        self._close_calls()
        return Transcript(session_id, tuple(self.entries), upto, tuple(self.dropped), tuple(self.repaired))


@attrs.define
class _Run:
    start: int  # where its entries begin
    answered: bool = False
    ended: bool = False
    streamed: list[str] = attrs.field(factory=list)
    thinking: list[str] = attrs.field(factory=list)


@attrs.frozen
class Folded:
    """A session's transcript as its events up to seq ``upto`` made it, every run in
    them ended: where the next read of the session can go on from."""

    upto: int
    entries: tuple[Entry, ...]
    dropped: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()


class TranscriptCache:
    """The transcripts of the sessions a manager has continued, each as far as every run in
    it had ended, so that the next run's is read from the events after that: a run's start
    costs what the session gained since, not its whole length. A session's events before
    that point do not change (compaction replaces only deltas the transcript never reads).
    Holds ``size`` sessions, the least recently continued going first.

    >>> cache = TranscriptCache(size=100)
    """

    def __init__(self, size: int = 1024) -> None:
        if size < 1:
            raise AsmError("validation_error", f"a transcript cache holds at least 1 session, not {size}")
        self.size = size
        self._folded: OrderedDict[str, Folded] = OrderedDict()

    def get(self, session_id: str) -> Folded | None:
        """The session's transcript as far as it was folded, if it is held."""
        folded = self._folded.get(session_id)
        if folded is not None:
            self._folded.move_to_end(session_id)
        return folded

    def put(self, session_id: str, folded: Folded) -> None:
        """Hold ``folded`` as the session's, dropping the least recently used past ``size``."""
        self._folded[session_id] = folded
        self._folded.move_to_end(session_id)
        while len(self._folded) > self.size:
            self._folded.popitem(last=False)


def build_transcript(session_id: str, events: Iterable[Event], *, upto: int | None = None) -> Transcript:
    """The transcript of ``events`` (a session's, in seq order), up to seq ``upto``."""
    builder = _Builder()
    last = builder.add_all(events, upto)
    return builder.finish(session_id, last)


async def transcript(
    store: SessionStore, session_id: str, *, upto: int | None = None, cache: TranscriptCache | None = None
) -> Transcript:
    """Rebuild the conversation of ``session_id`` from ``store`` (see the module docstring).
    With a ``cache`` (and no ``upto``), only the events after what it holds of the session
    are read, and what they make is held for the next call.

    >>> t = await transcript(store, session.id)  # doctest: +SKIP
    >>> [(e.role, e.content) for e in t.messages]  # doctest: +SKIP
    [('user', 'hello'), ('assistant', 'hi!')]
    """
    cache = cache if upto is None else None
    folded = cache.get(session_id) if cache is not None else None
    start = folded.upto if folded is not None else 0
    # Streamed deltas are most of a log, and they stand in for an answer only in a run that
    # stored no message_received (see _Builder._end_run): everything else is read first, then
    # the deltas of those runs alone. (Every run before ``start`` had ended: its deltas are folded.)
    before = _before(upto)
    events = await _read(store, session_id, before, _NOT_DELTAS, after=start)
    answered = {e.run_id for e in events if e.type is EventType.MESSAGE_RECEIVED}
    runs = {e.run_id for e in events if e.run_id is not None}
    wanted = runs - answered
    # The deltas after everything else (a run still streaming) are read too: ``upto`` is the last seq read.
    last = _seq(events[-1]) if events else start
    if wanted == runs or len(wanted) > _RUNS_READ_ALONE:
        # No run since ``start`` stored an answer (a provider that only streams), or many did
        # not: one read of every delta since then.
        every = await _read(store, session_id, before, _DELTAS, after=start)
        deltas = [e for e in every if e.run_id in wanted or _seq(e) > last]
    else:
        deltas = await _read(store, session_id, before, _DELTAS, after=last)
        for run_id in sorted(wanted):
            deltas += await _read(store, session_id, before, _DELTAS, after=start, run_id=run_id)
    if deltas:
        events = sorted({_seq(e): e for e in [*events, *deltas]}.values(), key=_seq)
    builder = _Builder(folded)
    last = builder.add_all(events, upto, start)
    if cache is not None and (refolded := builder.fold(last)) is not None:
        cache.put(session_id, refolded)
    return builder.finish(session_id, last)


_DELTAS: Final = (EventType.MESSAGE_STREAMED,)
_NOT_DELTAS: Final = tuple(t for t in TRANSCRIPT_TYPES if t is not EventType.MESSAGE_STREAMED)
#: Up to this many runs that need their deltas get a read each; more, one read of all deltas.
_RUNS_READ_ALONE: Final = 8


async def _read(
    store: SessionStore,
    session_id: str,
    before: int | None,
    types: tuple[EventType, ...],
    *,
    after: int = 0,
    run_id: str | None = None,
) -> list[Event]:
    events: list[Event] = []
    while True:
        page = await store.read_events(session_id, after=after, before=before, types=types, run_id=run_id)
        events.extend(page.events)
        if not page.has_more:
            return events
        after = page.cursor


def _seq(event: Event) -> int:
    return event.seq or 0


def _before(upto: int | None) -> int | None:
    return None if upto is None else upto + 1


# -- continuing a session: what a run's provider is sent ----------------------------------------


#: The share of a model's context window a transcript may fill by default; the rest is left for
#: the answer, the tool definitions and the provider's own framing.
WINDOW_SHARE: Final = 0.75

#: Counts the tokens of a text: ``(text) -> int``.
TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """asm's estimate when no tokenizer is plugged in (``asm_count_tokens``): four characters a token.

    >>> estimate_tokens("twelve chars")
    3
    """
    return -(-len(text) // 4)


def entry_text(entry: Entry) -> str:
    """What of ``entry`` a provider is sent, as text (for counting its tokens)."""
    if entry.kind == "tool_call":
        return f"{entry.tool_name} {_json(entry.tool_input)}"
    if entry.kind == "tool_result":
        return f"{entry.tool_name} {_json(entry.tool_output)}"
    return entry.content


@attrs.frozen
class Continuation:
    """How one run continues its session, as the manager decided before it started.

    ``mode`` is ``native`` (the provider resumes ``resume_id``), ``replay`` (``history`` is
    sent) or ``None`` (nothing earlier to continue, or ``continuation="none"``);
    ``truncated`` says what was dropped to fit the token budget."""

    mode: str | None = None
    history: tuple[Entry, ...] = ()
    resume_id: str | None = None
    truncated: TranscriptTruncated | None = None
    #: what the run says in place of its own messages (``resume``: :data:`RESUME_PROMPT`)
    messages: tuple[Message, ...] = ()

    def apply(self, run: RunInput) -> RunInput:
        """``run`` as its provider gets it: with the history or the resume id (and, to
        resume a cut attempt, the message that asks to go on from it)."""
        messages = self.messages or run.messages
        return attrs.evolve(run, history=self.history, resume_id=self.resume_id, messages=messages)


async def plan(
    store: SessionStore,
    run: Run,
    *,
    mode: str,
    native_resume: bool,
    budget: int | None,
    count: TokenCounter = estimate_tokens,
    cache: TranscriptCache | None = None,
) -> Continuation:
    """Decide how ``run`` continues its session (see :data:`asm.model.CONTINUATION_MODES`).

    ``native_resume`` is whether the run's provider can resume its own conversation
    (``Capabilities.native_resume``); ``budget`` the transcript's token budget (``None``: no
    limit). A ``native`` run that cannot resume (the session's last run was served by another
    provider, or left no resume id) is a ``validation_error`` naming the way out. A run whose
    mode is :data:`asm.model.RESUME` goes on from its own cut attempt (:func:`resume`).
    """
    if mode == RESUME:
        return await resume(store, run, budget=budget, count=count, cache=cache)
    check_continuation(mode)
    if mode == "none":
        return Continuation()
    # Only a provider that resumes its own conversations (or a run that must) needs the last
    # run: reading it means decoding every run of the session.
    if mode == "native" or (mode == "auto" and native_resume):
        last = await last_run(store, run)
        resume_id = last.result.resume_id if last is not None and last.result is not None else None
        if native_resume and last is not None and last.provider == run.provider and resume_id:
            return Continuation("native", resume_id=resume_id)
        if mode == "native" and last is not None:
            raise AsmError(
                "validation_error",
                _why_not_native(run, last, native_resume)
                + "; use continuation='auto' or 'replay' to send the transcript instead",
                details={"run_id": run.id, "last_run_id": last.id, "last_provider": last.provider},
            )
    return await replay(store, run, budget=budget, count=count, cache=cache)


async def replay(
    store: SessionStore,
    run: Run,
    *,
    budget: int | None,
    count: TokenCounter = estimate_tokens,
    cache: TranscriptCache | None = None,
) -> Continuation:
    """``run`` continues by replay: its session's transcript (read through ``cache``), cut to ``budget`` tokens."""
    history = (await transcript(store, run.session_id, cache=cache)).entries
    history = tuple(entry for entry in history if entry.run_id != run.id)
    history, truncated = fit(history, run.input, budget=budget, count=count)  # the input alone may be over
    return Continuation("replay", history=history, truncated=truncated) if history else Continuation()


#: What a run executed again after its worker was lost says, after its cut attempt (:func:`resume`).
RESUME_PROMPT: Final = (
    "Your reply to the last request was cut off before it finished: the process running it stopped. "
    "Everything above is what you had said and done by then. Go on from where it stopped, without "
    "repeating what is already said or done."
)


async def resume(
    store: SessionStore,
    run: Run,
    *,
    budget: int | None,
    count: TokenCounter = estimate_tokens,
    cache: TranscriptCache | None = None,
) -> Continuation:
    """``run`` goes on from its own cut attempt (its worker was lost mid-run): the session's
    transcript *with* what the attempt had said and done (its prompt, its partial answer, its
    tool calls, an unanswered one closed as interrupted), then :data:`RESUME_PROMPT` in place of
    the run's messages, so the model continues rather than starts over. An attempt that got
    to nothing is a plain :func:`replay`.
    """
    history = (await transcript(store, run.session_id, cache=cache)).entries
    if not any(entry.run_id == run.id for entry in history):
        return await replay(store, run, budget=budget, count=count, cache=cache)
    messages = (Message("user", RESUME_PROMPT),)
    history, truncated = fit(history, attrs.evolve(run.input, messages=messages), budget=budget, count=count)
    return Continuation(RESUME, history=history, truncated=truncated, messages=messages)


async def last_run(store: SessionStore, run: Run) -> Run | None:
    """The session's run that started last before ``run`` (``None`` if none did)."""
    started = [r for r in await store.list_runs(run.session_id) if r.id != run.id and r.started_at is not None]
    return max(started, key=lambda r: r.started_at or r.created_at, default=None)


def _why_not_native(run: Run, last: Run, native_resume: bool) -> str:
    if not native_resume:
        return f"provider {run.provider!r} cannot resume a conversation of its own (continuation='native')"
    if last.provider != run.provider:
        return (
            f"the session's last run ({last.id}) was served by {last.provider!r}, not {run.provider!r}: "
            "its resume id means nothing to this provider"
        )
    return f"the session's last run ({last.id}, {last.status.value}) left no resume id to continue from"


def fit(
    history: Sequence[Entry], run: RunInput, *, budget: int | None, count: TokenCounter = estimate_tokens
) -> tuple[tuple[Entry, ...], TranscriptTruncated | None]:
    """``history`` cut to ``budget`` tokens together with ``run``'s own input: the system
    messages and the latest turns are kept, the oldest whole turns (a user message and all
    that followed it, so a tool call is never parted from its result) dropped. Over budget
    with every turn dropped is ``context_window_exceeded``, with the numbers."""
    entries = tuple(history)
    if budget is None:
        return entries, None
    fixed = sum(count(m.content) for m in run.messages)
    fixed += sum(count(entry_text(e)) for e in entries if e.kind == "message" and e.role == "system")
    turns = _turns([e for e in entries if not (e.kind == "message" and e.role == "system")])
    sizes = [sum(count(entry_text(e)) for e in turn) for turn in turns]
    if fixed > budget:
        raise AsmError(
            "context_window_exceeded",
            f"the run's input and the session's system messages are ~{fixed} tokens, over the budget of "
            f"{budget}; shorten the input or raise continuation_max_tokens",
            details={"tokens": fixed, "budget": budget},
        )
    total, first = fixed + sum(sizes), 0
    while total > budget:
        total -= sizes[first]
        first += 1
    if first == 0:
        return entries, None
    dropped = {id(e) for turn in turns[:first] for e in turn}
    kept = tuple(e for e in entries if id(e) not in dropped)
    return kept, TranscriptTruncated(len(dropped), first, len(kept), total, budget)


def _turns(entries: Sequence[Entry]) -> list[list[Entry]]:
    """``entries`` in turns, each from a user message to the next one."""
    turns: list[list[Entry]] = []
    for entry in entries:
        if not turns or (entry.kind == "message" and entry.role == "user"):
            turns.append([])
        turns[-1].append(entry)
    return turns


def render_preamble(history: Sequence[Entry]) -> str:
    """``history`` as text, for a provider that takes one prompt (the CLI agents' replay).

    One block per entry, oldest first, thinking left out::

        [user] What is in app.py?
        [assistant] Let me read it.
        [tool call read_file id=toolu_1] {"path": "app.py"}
        [tool result read_file id=toolu_1] "print('hi')"

    >>> render_preamble([Entry("message", "user", "hi"), Entry("message", "assistant", "hello")])
    '[user] hi\\n[assistant] hello'
    """
    lines = []
    for entry in history:
        if entry.kind == "message":
            lines.append(f"[{entry.role}] {entry.content}")
        elif entry.kind == "tool_call":
            lines.append(f"[tool call {entry.tool_name} id={entry.tool_call_id}] {_json(entry.tool_input)}")
        elif entry.kind == "tool_result":
            failed = " error" if entry.is_error else ""
            lines.append(f"[tool result{failed} {entry.tool_name} id={entry.tool_call_id}] {_json(entry.tool_output)}")
    return "\n".join(lines)


#: How a CLI agent's prompt carries a replayed conversation (:func:`replay_prompt`).
PREAMBLE_HEADER: Final = "The conversation so far (replayed by asm; continue it):"
PROMPT_HEADER: Final = "The new message:"


def replay_prompt(run: RunInput) -> str:
    """The prompt of a provider that takes one text (a CLI agent): ``run.prompt``, after the
    rendered history (:func:`render_preamble`) when the run replays its session.

    >>> run = RunInput.coerce("and now?")
    >>> replay_prompt(attrs.evolve(run, history=(Entry("message", "user", "hi"),)))
    'The conversation so far (replayed by asm; continue it):\\n[user] hi\\n\\nThe new message:\\nand now?'
    """
    if not run.history:
        return run.prompt
    return f"{PREAMBLE_HEADER}\n{render_preamble(run.history)}\n\n{PROMPT_HEADER}\n{run.prompt}"


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


@attrs.frozen
class Exchange:
    """One message of a replayed history as a chat API takes it (:func:`exchanges`).

    ``kind`` is ``system``, ``user`` or ``assistant`` (``text``; an assistant's
    ``calls`` are the tool calls it made in that message) or ``tool_results``
    (``results``, answering the calls of the assistant message before)."""

    kind: Literal["system", "user", "assistant", "tool_results"]
    text: str = ""
    calls: tuple[Entry, ...] = ()
    results: tuple[Entry, ...] = ()


def exchanges(history: Sequence[Entry]) -> list[Exchange]:
    """``history`` as chat messages: an assistant's text and the tool calls after it in one
    message, the calls' results together in the next, consecutive texts of one role joined,
    thinking left out (no API takes back thinking it did not sign), empty texts dropped.

    >>> [x.kind for x in exchanges([Entry("message", "user", "hi"), Entry("message", "assistant", "yo")])]
    ['user', 'assistant']
    """
    out: list[Exchange] = []
    for entry in history:
        last = out[-1] if out else None
        if entry.kind == "message" and entry.content.strip():
            kind = entry.role if entry.role in ("system", "user") else "assistant"
            if last is not None and last.kind == kind and not last.calls:
                out[-1] = attrs.evolve(last, text=f"{last.text}\n\n{entry.content}")
            else:
                out.append(Exchange(kind, entry.content))  # type: ignore[arg-type]
        elif entry.kind == "tool_call":
            if last is not None and last.kind == "assistant":
                out[-1] = attrs.evolve(last, calls=(*last.calls, entry))
            else:
                out.append(Exchange("assistant", calls=(entry,)))
        elif entry.kind == "tool_result":
            if last is not None and last.kind == "tool_results":
                out[-1] = attrs.evolve(last, results=(*last.results, entry))
            else:
                out.append(Exchange("tool_results", results=(entry,)))
    return out


def system_texts(prompt: str | None, run: RunInput) -> list[str]:
    """The system texts of a request whose API takes them apart from the messages: the
    provider's configured ``prompt``, then the replayed history's system messages and the
    run's own, each once (a caller that sends the same system message every run).

    >>> messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    >>> run = attrs.evolve(RunInput.coerce(messages),
    ...     history=(Entry("message", "system", "Be brief."),))
    >>> system_texts("You are asm.", run)
    ['You are asm.', 'Be brief.']
    """
    texts = [prompt] if prompt else []
    history = [e.content for e in run.history if e.kind == "message" and e.role == "system"]
    for text in history + [m.content for m in run.messages if m.role == "system"]:
        if text not in texts:
            texts.append(text)
    return texts


def wire_tool_id(tool_call_id: str | None) -> str:
    """``tool_call_id`` as every API accepts one (letters, digits, ``_`` and ``-``, at most 64
    characters): the same id where it already is, else a stable rewrite, so that a call
    and its result still match after a session moves to another provider.

    >>> wire_tool_id("toolu_01A"), wire_tool_id("call:1/2")
    ('toolu_01A', 'call_1_2_5c78ae')
    """
    value = tool_call_id or "call"
    if _TOOL_ID.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:6]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', value)[:50]}_{digest}"


_TOOL_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def tool_output_text(entry: Entry) -> str:
    """A tool result's output as the text an API's tool-result message carries."""
    return _json(entry.tool_output) if entry.tool_output is not None else ""
