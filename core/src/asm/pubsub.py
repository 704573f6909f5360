"""Live fan-out of stored events: the in-process broker, durable subscriptions, a pub/sub sink.

Every event a :class:`~asm.manager.SessionManager` stores is published, once
the store acknowledged it, on the topic ``asm.session.<session_id>`` of the
manager's in-process broker (:func:`broker_for`). A durable subscription
(:func:`open_subscription`, or ``SessionServer.subscribe``) reads the stored
events after a cursor, then follows the live ones, with no gap and no
duplicate at the switch::

    async with asm.open_subscription(manager, session_id, after=0) as events:
        async for event in events:
            print(event.seq, event.type)

A subscriber that falls behind never holds a run back: its live buffer is
bounded, and when it overflows the subscription drops it and reads what it
missed from the store, then goes live again.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Literal

import trio

from asm.errors import AsmError
from asm.events import Event, EventType
from asm.manager import SessionManager
from asm.ports import PubSub
from asm.runtime import Runtime
from asm.stores import parse_event_types

__all__ = [
    "InProcessBroker",
    "PubSubSink",
    "Subscription",
    "broker_for",
    "open_subscription",
    "session_topic",
    "subscriber_count",
]

#: Prefix of the per-session topics: ``asm.session.<session_id>``.
TOPIC_PREFIX = "asm.session."


def session_topic(session_id: str) -> str:
    """The topic a session's events are published on: ``asm.session.<session_id>``."""
    return TOPIC_PREFIX + session_id


class _Mailbox:
    """One subscriber's bounded live buffer; ``offer`` never blocks."""

    __slots__ = ("_wakeup", "capacity", "events", "overflowed")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.events: deque[Event] = deque()
        self.overflowed = False
        self._wakeup = trio.Event()

    def offer(self, event: Event) -> None:
        if not self.overflowed:
            if len(self.events) >= self.capacity:
                # Past the bound: forget the backlog; the subscriber re-reads it from the store.
                self.overflowed = True
                self.events.clear()
            else:
                self.events.append(event)
        self._wakeup.set()

    async def wait(self) -> None:
        """Return once something was offered (or the mailbox overflowed)."""
        if self.events or self.overflowed:
            await trio.lowlevel.checkpoint()
            return
        if self._wakeup.is_set():
            self._wakeup = trio.Event()
        await self._wakeup.wait()


class InProcessBroker:
    """A :class:`~asm.ports.PubSub` inside one process: topics to bounded mailboxes.

    ``publish`` never blocks on a subscriber. A plain ``subscribe`` iterator
    that falls more than ``buffer`` events behind raises ``queue_full`` (it
    would otherwise lose events silently); durable subscriptions
    (:func:`open_subscription`) instead catch up from the store.
    """

    def __init__(self, *, buffer: int = 1000) -> None:
        if buffer < 1:
            raise AsmError("validation_error", f"buffer must be >= 1, not {buffer}")
        self.buffer = buffer
        self._topics: dict[str, list[_Mailbox]] = {}

    def publish_nowait(self, topic: str, event: Event) -> None:
        """Hand ``event`` to every subscriber of ``topic`` without waiting."""
        for mailbox in self._topics.get(topic, ()):
            mailbox.offer(event)

    async def publish(self, topic: str, event: Event) -> None:
        """Publish ``event`` on ``topic`` (never waits for a subscriber)."""
        self.publish_nowait(topic, event)
        await trio.lowlevel.checkpoint()

    def subscriber_count(self, topic: str) -> int:
        """How many subscribers ``topic`` has now."""
        return len(self._topics.get(topic, ()))

    @contextlib.contextmanager
    def _attached(self, topic: str, capacity: int) -> Iterator[_Mailbox]:
        mailbox = _Mailbox(capacity)
        self._topics.setdefault(topic, []).append(mailbox)
        try:
            yield mailbox
        finally:
            boxes = self._topics[topic]
            boxes.remove(mailbox)
            if not boxes:
                del self._topics[topic]

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, *, buffer: int | None = None) -> AsyncIterator[AsyncIterator[Event]]:
        """``async with broker.subscribe(topic) as events``: the events published
        on ``topic`` from now on, until the block ends."""
        if buffer is not None and buffer < 1:
            raise AsmError("validation_error", f"buffer must be >= 1, not {buffer}")
        with self._attached(topic, buffer or self.buffer) as mailbox:
            yield _LiveEvents(mailbox, topic)


class _LiveEvents:
    """The iterator of a plain broker subscription (a class, not an async generator,
    so leaving the ``async with`` early needs no finalization)."""

    def __init__(self, mailbox: _Mailbox, topic: str) -> None:
        self._mailbox = mailbox
        self._topic = topic

    def __aiter__(self) -> _LiveEvents:
        return self

    async def __anext__(self) -> Event:
        mailbox = self._mailbox
        while not mailbox.events or mailbox.overflowed:
            if mailbox.overflowed:
                raise AsmError(
                    "queue_full",
                    f"a subscriber of {self._topic} fell more than {mailbox.capacity} events behind and lost "
                    "events; consume faster, raise buffer, or use a durable subscription (asm.open_subscription)",
                    details={"topic": self._topic, "buffer": mailbox.capacity},
                )
            await mailbox.wait()
        await trio.lowlevel.checkpoint()
        return mailbox.events.popleft()


_brokers: weakref.WeakKeyDictionary[SessionManager, InProcessBroker] = weakref.WeakKeyDictionary()


def broker_for(manager: SessionManager) -> InProcessBroker:
    """The in-process broker fed by ``manager``: every event it stores is
    published on ``asm.session.<session_id>`` (created on first use)."""
    broker = _brokers.get(manager)
    if broker is None:
        broker = _brokers[manager] = InProcessBroker()
        publish = broker.publish_nowait
        manager.add_event_listener(lambda event: publish(TOPIC_PREFIX + event.session_id, event))
    return broker


class Subscription:
    """The async iterator a durable subscription yields: stored events after
    the cursor, then live ones. ``cursor`` is the seq of the last event read
    (matching or not), so a later ``open_subscription(after=cursor)`` resumes
    exactly there."""

    def __init__(
        self,
        manager: SessionManager,
        session_id: str,
        mailbox: _Mailbox | None,
        *,
        after: int,
        types: frozenset[EventType] | None,
        run_id: str | None,
        page_size: int,
    ) -> None:
        self._store = manager.store
        self.session_id = session_id
        self.cursor = after
        self._mailbox = mailbox
        self._types = types
        self._run_id = run_id
        self._page_size = page_size
        self._ready: deque[Event] = deque()
        self._need_store = True
        #: How many times the subscription fell back to the store after its live buffer overflowed.
        self.catch_ups = 0

    def __aiter__(self) -> Subscription:
        return self

    def _matches(self, event: Event) -> bool:
        return (self._types is None or event.data.type in self._types) and (
            self._run_id is None or event.run_id == self._run_id
        )

    async def __anext__(self) -> Event:
        while not self._ready:
            await self._fill()
        await trio.lowlevel.checkpoint()
        return self._ready.popleft()

    def take_ready(self) -> list[Event]:
        """The events already here and not yet returned, without waiting (``[]`` if
        none): those read from the store, and the live ones delivered since, up to
        the first that needs the store (a gap, an overflow). A consumer that writes in
        batches (an HTTP stream) takes them after ``__anext__`` or after a pause, in
        order, instead of one ``__anext__`` (and one wake-up) per event."""
        mailbox = self._mailbox
        if mailbox is not None and not mailbox.overflowed and not self._need_store:
            while mailbox.events:
                seq = mailbox.events[0].seq or 0
                if seq > self.cursor + 1:
                    break  # a gap: __anext__ reads it from the store
                event = mailbox.events.popleft()
                if seq <= self.cursor:
                    continue  # already read from the store
                self.cursor = seq
                if self._matches(event):
                    self._ready.append(event)
        taken = list(self._ready)
        self._ready.clear()
        return taken

    async def _fill(self) -> None:
        mailbox = self._mailbox
        if mailbox is None:
            # follow="store": long-poll the store, whoever (any process) appends.
            page = await self._store.wait_for_events(self.session_id, after=self.cursor, limit=self._page_size)
            self._ready.extend(e for e in page.events if self._matches(e))
            self.cursor = max(self.cursor, page.cursor)
            return
        if mailbox.overflowed:
            mailbox.overflowed = False
            mailbox.events.clear()
            self._need_store = True
            self.catch_ups += 1
        if self._need_store:
            page = await self._store.read_events(
                self.session_id,
                after=self.cursor,
                limit=self._page_size,
                types=self._types,
                run_id=self._run_id,
            )
            self._ready.extend(page.events)
            self.cursor = max(self.cursor, page.cursor)
            # Stored events are read page by page until the store has no more.
            self._need_store = page.has_more
            if self._ready or self._need_store:
                return
        while mailbox.events:
            event = mailbox.events.popleft()
            seq = event.seq or 0
            if seq <= self.cursor:
                continue  # already read from the store
            if seq != self.cursor + 1:
                # Events of concurrent runs can be handed on out of seq order:
                # the store has everything up to this one, read it from there.
                self._need_store = True
                return
            self.cursor = seq
            if self._matches(event):
                self._ready.append(event)
        if not self._ready:
            await mailbox.wait()


def subscriber_count(manager: SessionManager, session_id: str) -> int:
    """How many subscribers follow ``session_id`` through ``manager``'s broker now."""
    broker = _brokers.get(manager)
    return broker.subscriber_count(session_topic(session_id)) if broker is not None else 0


@contextlib.asynccontextmanager
async def open_subscription(
    source: SessionManager | Runtime,
    session_id: str,
    *,
    after: int = 0,
    types: Iterable[EventType | str] | None = None,
    run_id: str | None = None,
    buffer: int = 1000,
    page_size: int = 500,
    follow: Literal["manager", "store"] | PubSub = "manager",
) -> AsyncIterator[Subscription]:
    """Subscribe to a session's events: those stored with ``seq > after``,
    then live ones as ``source`` (a manager, or a runtime's manager) stores them, filtered by ``types`` and
    ``run_id``. ``buffer`` live events may wait for the consumer; past that the
    subscription catches up from the store. The iterator never ends on its
    own: leave the block (or cancel) to stop.

    ``follow`` says where live events come from: ``"manager"`` (the default)
    takes them from that manager as it stores them (this process, no store
    reads while caught up); ``"store"`` long-polls the store's
    ``wait_for_events`` instead, so it also sees events other processes append
    to a shared store, at the cost of a store read per wake-up. A
    :class:`~asm.ports.PubSub` (asm-redis's, fed by the ``redis`` sink of the
    processes that run the session's runs) carries the live events from any
    process without store reads while caught up; what it misses shows as a gap
    in ``seq`` and is read from the store.
    """
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise AsmError("validation_error", f"after must be a seq >= 0, not {after!r}")
    if buffer < 1 or page_size < 1:
        raise AsmError("validation_error", f"buffer and page_size must be >= 1, not {buffer} and {page_size}")
    if not isinstance(follow, PubSub) and follow not in ("manager", "store"):
        raise AsmError("validation_error", f"follow must be 'manager', 'store' or a PubSub, not {follow!r}")
    wanted = parse_event_types(types)
    manager = source if isinstance(source, SessionManager) else source.manager
    if isinstance(follow, PubSub):
        # Subscribed before the first store read, as below: the seq cursor drops what comes twice.
        async with follow.subscribe(session_topic(session_id)) as live, trio.open_nursery() as nursery:
            mailbox = _Mailbox(buffer)

            async def pump() -> None:
                async for event in live:
                    mailbox.offer(event)

            nursery.start_soon(pump)
            try:
                yield Subscription(
                    manager, session_id, mailbox, after=after, types=wanted, run_id=run_id, page_size=page_size
                )
            finally:
                nursery.cancel_scope.cancel()
        return
    if follow == "store":
        yield Subscription(manager, session_id, None, after=after, types=wanted, run_id=run_id, page_size=page_size)
        return
    broker = broker_for(manager)
    # Attach before the first store read: whatever is stored from now on is
    # also offered live, and the seq cursor drops what was read twice.
    with broker._attached(session_topic(session_id), buffer) as mailbox:
        yield Subscription(
            manager,
            session_id,
            mailbox,
            after=after,
            types=wanted,
            run_id=run_id,
            page_size=page_size,
        )


class PubSubSink:
    """A rendering-pipeline :class:`~asm.ports.Sink` that publishes every event
    on ``asm.session.<session_id>`` of ``pubsub`` (any :class:`~asm.ports.PubSub`)."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub

    async def write(self, text: str, event: Event | None) -> None:
        """Publish ``event`` (the renderer's closing text, with no event, is not published)."""
        if event is not None:
            await self.pubsub.publish(session_topic(event.session_id), event)

    async def aclose(self) -> None:
        """Nothing to flush; the pub/sub belongs to whoever made it."""
