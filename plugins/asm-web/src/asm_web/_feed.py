"""One live feed per followed session, shared by every SSE client of it in this server.

A session followed by a thousand browsers is read once: a :class:`SessionFeed`
holds the one subscription to it (live from the manager, or long-polling the
store) and keeps its recent events, each already formatted as an SSE message,
in a bounded window. Each client keeps only its cursor (the seq of the last
event it was sent) and, when woken, writes in one go what the window holds
past that cursor; then it parks until the next batch (or the feed's tick, when
a quiet stream owes its client a heartbeat), with no timer of its own. The feed
never waits for a client: a client whose cursor has dropped out of the window
(a slow reader, or one resuming from an old ``Last-Event-ID``) reads the missing
events from the store by cursor, page by page, and then joins the window again:
no gap and no duplicate either way.

Feeds live in a nursery of the :class:`~asm_web.WebService` (so they end with
the app) and each stops when its last client leaves.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, NoReturn

import attrs
import trio

from asm.errors import AsmError
from asm.events import Event
from asm.runtime import Runtime
from asm.serde import event_to_dict

__all__ = ["FeedStatistics", "Feeds", "SessionFeed", "format_sse", "json_bytes"]

_log = logging.getLogger("asm_web")

#: The most bytes of messages a feed's window keeps, whatever its number of events: past
#: twice this, its oldest batches go (clients further behind read the store).
WINDOW_BYTES: Final = 32 * 1024 * 1024
#: The most events one client write carries.
MAX_WRITE: Final = 2000
#: Clients a feed wakes at once (see :meth:`SessionFeed.fan_out`).
_GROUP: Final = 10
#: The scheduler rounds a woken client takes to write a batch: it wakes and takes it, then
#: Hypercorn's send lock and the socket's send each pass a checkpoint; one more to spare.
_WRITE_ROUNDS: Final = 4
#: How many ticks a feed gives per heartbeat interval: a stream owes a heartbeat once more
#: than that many went by since its last write, between 1 and 1.25 intervals after it.
_TICKS_PER_HEARTBEAT: Final = 4

Formatter = Callable[[Event], bytes]


def json_bytes(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON (decimals as strings, datetimes in ISO 8601)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default).encode()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def format_sse(event: Event) -> bytes:
    """One event as an SSE message: ``id:`` its seq, ``event:`` its type, ``data:`` its JSON."""
    body = json_bytes(event_to_dict(event))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq or 0, event.data.type.value.encode(), body)


class _Batch:
    """Events the feed took in one go: their seqs, the events, each one's SSE message, and
    the messages joined (what a client following everything is sent, the same bytes for all)."""

    __slots__ = ("data", "events", "first", "last", "messages", "seqs")

    def __init__(self, events: list[Event], messages: list[bytes]) -> None:
        self.events = events
        self.messages = messages
        self.seqs = [e.seq or 0 for e in events]
        self.first = self.seqs[0]
        self.last = self.seqs[-1]
        self.data = b"".join(messages)


class SessionFeed:
    """The latest events of one session, formatted once, for all its clients.

    ``head`` is the seq of the newest event the feed has; the window holds the
    events from :attr:`first` to ``head``: ``window`` of them (and :data:`WINDOW_BYTES`
    of messages) or more, up to twice that before whole batches are dropped from its
    start. Made and run by :class:`Feeds`.
    """

    def __init__(self, session_id: str, head: int, format_event: Formatter, *, window: int = 10_000) -> None:
        self.session_id = session_id
        self.head = head
        self.window = window
        self._format = format_event
        self._batches: list[_Batch] = []
        self._firsts: list[int] = []
        self._size = 0
        self._bytes = 0
        self.closed = False
        #: ticks so far (:meth:`tick`): the clock its streams' heartbeats go by
        self.ticks = 0
        #: clients following the feed now (the first one counted by its start)
        self.clients = 0
        self._scope = trio.CancelScope()
        # Clients wait for the next batch in _waiting; a batch moves them all to _woken,
        # and the feed wakes them from there a group at a time (:meth:`fan_out`).
        self._waiting = trio.lowlevel.ParkingLot()
        self._woken = trio.lowlevel.ParkingLot()

    @property
    def first(self) -> int:
        """The seq of the oldest event in the window (``head + 1`` while it is empty)."""
        return self._firsts[0] if self._firsts else self.head + 1

    def holds(self, cursor: int) -> bool:
        """Whether the events after ``cursor`` are all in the window (or yet to come)."""
        return cursor + 1 >= self.first

    def publish(self, events: list[Event]) -> None:
        """Add a batch of events (in seq order) and wake every client; those not newer
        than ``head`` are dropped."""
        events = [e for e in events if (e.seq or 0) > self.head]
        if not events:
            return
        batch = _Batch(events, [self._format(e) for e in events])
        self._batches.append(batch)
        self._firsts.append(batch.first)
        self._size += len(events)
        self._bytes += len(batch.data)
        self.head = batch.last
        if self._size > 2 * self.window or self._bytes > 2 * WINDOW_BYTES:
            # Trimmed to about half its bound, a whole batch at a time (and never the newest).
            drop = 0
            while drop < len(self._batches) - 1 and (self._size > self.window or self._bytes > WINDOW_BYTES):
                self._size -= len(self._batches[drop].events)
                self._bytes -= len(self._batches[drop].data)
                drop += 1
            del self._batches[:drop], self._firsts[:drop]
        self._wake()

    def close(self) -> None:
        """No more events will come (the feed failed or stopped): wake the clients to leave."""
        self.closed = True
        self._waiting.unpark_all()
        self._woken.unpark_all()

    def tick(self) -> None:
        """Count a tick and wake every waiting client with nothing new: each sees whether
        it owes its client a heartbeat (:meth:`owes_heartbeat`). (A client waits with no
        timer of its own: a cancel scope per wait was a sixth of the cost of a write.)"""
        self.ticks += 1
        self._waiting.unpark_all()

    def owes_heartbeat(self, written: int) -> bool:
        """Whether a stream that last wrote at tick ``written`` (the :attr:`ticks` then)
        has been quiet for a heartbeat interval: more than four ticks since."""
        return self.ticks - written > _TICKS_PER_HEARTBEAT

    def _wake(self) -> None:
        self._waiting.repark_all(self._woken)

    async def wait(self, cursor: int) -> None:
        """Return once the feed has an event after ``cursor``, has closed, or ticks
        (:meth:`tick`), whichever comes first."""
        if self.head <= cursor and not self.closed:
            await self._waiting.park()
        else:
            await trio.lowlevel.checkpoint()

    async def fan_out(self, group: int) -> None:
        """Wake the clients a batch found waiting, ``group`` at a time, and give each
        group the scheduler rounds a write takes before waking the next: the run queue
        holds about one group, so every other task (the runs, the store, other requests)
        has a turn every few milliseconds however many clients there are, and writing
        to a thousand clients may take most of the loop without stalling the runs.
        (Woken all at once, a thousand clients made each step of a run wait behind all
        of their writes.) A client blocked on a full socket is not runnable and holds
        nothing up. Returns once all are woken and the last group had its rounds."""
        while self._woken:
            self._woken.unpark(count=group)
            for _ in range(_WRITE_ROUNDS):
                await trio.lowlevel.cancel_shielded_checkpoint()

    def take(self, cursor: int, match: Callable[[Event], bool] | None = None) -> tuple[bytes, int]:
        """The messages of the window's events after ``cursor`` (only those ``match``
        accepts, if given), and the new cursor: whole batches, up to :data:`MAX_WRITE`
        events or the one batch past it. The caller first makes sure the window
        :meth:`holds` the cursor."""
        batches = self._batches
        index = max(0, bisect.bisect_right(self._firsts, cursor) - 1)
        parts: list[bytes] = []
        count = 0
        while index < len(batches) and count < MAX_WRITE:
            batch = batches[index]
            index += 1
            if batch.last <= cursor:
                continue
            if match is None and batch.first > cursor:
                parts.append(batch.data)
                count += len(batch.seqs)
            else:
                start = bisect.bisect_right(batch.seqs, cursor)
                events, messages = batch.events, batch.messages
                parts += [messages[i] for i in range(start, len(events)) if match is None or match(events[i])]
                count += len(events) - start
            cursor = batch.last
        return (parts[0] if len(parts) == 1 else b"".join(parts)), cursor


@attrs.frozen
class FeedStatistics:
    """What :meth:`Feeds.statistics` tells."""

    #: session id -> how many SSE clients follow its feed now
    sessions: dict[str, int]
    #: feeds started so far (one per session while it has clients)
    feeds_started: int
    #: pages clients read from the store: catching up from behind a feed's window
    store_reads: int


class Feeds:
    """The open feeds of a runtime's sessions, started in ``nursery`` on the first
    client of a session and stopped when its last client leaves."""

    def __init__(
        self,
        runtime: Runtime,
        nursery: trio.Nursery,
        *,
        follow: Literal["manager", "store"],
        batch_seconds: float,
        heartbeat_seconds: float,
        window: int = 10_000,
        format_event: Formatter = format_sse,
    ) -> None:
        self._runtime = runtime
        self._nursery = nursery
        self._follow = follow
        self._batch_seconds = batch_seconds
        self._tick_seconds = heartbeat_seconds / _TICKS_PER_HEARTBEAT
        self._window = window
        self._format = format_event
        self._feeds: dict[str, SessionFeed] = {}
        self._opening = trio.Lock()
        self._started = 0
        #: pages read from the store by clients behind a window (see :meth:`statistics`)
        self.store_reads = 0

    @contextlib.asynccontextmanager
    async def join(self, session_id: str) -> AsyncIterator[SessionFeed]:
        """The session's feed (started if it has none) until the block ends."""
        feed = self._feeds.get(session_id)
        if feed is not None and not feed.closed:
            feed.clients += 1
        else:
            async with self._opening:
                feed = self._feeds.get(session_id)
                if feed is not None and not feed.closed:
                    feed.clients += 1
                else:
                    feed = await self._nursery.start(self._run, session_id)
        try:
            yield feed
        finally:
            feed.clients -= 1
            if feed.clients == 0:
                if self._feeds.get(session_id) is feed:
                    del self._feeds[session_id]
                feed._scope.cancel()

    async def _run(self, session_id: str, *, task_status: trio.TaskStatus[SessionFeed]) -> None:
        feed: SessionFeed | None = None
        try:
            # The feed starts at the stored head (older events are the clients' store reads);
            # the subscription reads what is stored after it, then follows live: no gap.
            head = await self._runtime.store.latest_seq(session_id)
            async with self._runtime.subscribe(session_id, after=head, follow=self._follow) as events:
                feed = SessionFeed(session_id, head, self._format, window=self._window)
                feed.clients = 1  # the client that starts it: counted before any other can leave
                self._started += 1
                self._feeds[session_id] = feed
                ticks = trio.CancelScope()
                self._nursery.start_soon(self._tick, feed, ticks)
                try:
                    with feed._scope:
                        task_status.started(feed)
                        await self._forward(events, feed)
                finally:
                    ticks.cancel()
        except Exception as exc:
            if feed is None:
                raise  # the first client's join() gets it
            if isinstance(exc, AsmError):
                _log.warning("the live feed of session %s stopped: %s: %s", session_id, exc.code, exc.message)
            else:
                _log.error("the live feed of session %s failed", session_id, exc_info=exc)
        finally:
            if feed is not None:
                feed.close()
                if self._feeds.get(session_id) is feed:
                    del self._feeds[session_id]

    async def _tick(self, feed: SessionFeed, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                await trio.sleep(self._tick_seconds)
                feed.tick()

    async def _forward(self, events: AsyncIterator[Event], feed: SessionFeed) -> NoReturn:
        iterator = events.__aiter__()
        take = getattr(events, "take_ready", None)
        while True:
            batch = [await iterator.__anext__()]
            if take is not None:
                # One wake-up of the clients per batch: what comes meanwhile joins it. A batch
                # gathers for sse_batch_seconds from its first event's stamp: an event that came
                # while the last batch was being written (to many clients) goes out in the next
                # with no further pause. (fan_out keeps the runs going meanwhile; a pause as long
                # as the last fan-out, to leave the runs half the loop, cost one more fan-out's
                # time of latency.)
                age = time.time() - batch[0].at.timestamp()
                pause = min(self._batch_seconds, self._batch_seconds - age)
                if pause > 0:
                    await trio.sleep(pause)
                batch += take()
            feed.publish(batch)
            await feed.fan_out(_GROUP)

    def statistics(self) -> FeedStatistics:
        """The feeds open now with their clients, the feeds started and the store reads so far."""
        return FeedStatistics(
            sessions={sid: feed.clients for sid, feed in self._feeds.items()},
            feeds_started=self._started,
            store_reads=self.store_reads,
        )
