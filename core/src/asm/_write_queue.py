"""A run's write queue: its events committed in batches, then handed on in order.

The second stage of a run's event path (:mod:`asm._run_gate` is the first): what
the gate lets through is queued here, a task commits what has queued in one
``append_events`` (group commit) and delivers the stored batch; the provider
waits only while the queue is full (backpressure). Nothing is delivered before
the store has acknowledged it, and a run ends only after its queue is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import trio

from asm._unicode import scrub
from asm.errors import AsmError
from asm.events import Event, EventData, MessageStreamed, ThinkingStreamed, _fresh_event
from asm.ports import EventCallback, SessionStore

if TYPE_CHECKING:
    from asm.manager import SessionManager

Append = Callable[..., Coroutine[Any, Any, list[Event]]]


class WriteQueue:
    """One run's bounded write queue and the task (:meth:`run`) that empties it.

    ``buffer`` is one list for the queue's life: the gate's path for a plain
    streamed delta appends to it directly (:attr:`takes_fresh`), and wakes the
    task only when it is :attr:`idle`.
    """

    def __init__(
        self,
        manager: SessionManager,
        session_id: str,
        run_id: str,
        provider: str,
        on_event: EventCallback | None,
        cancel: Callable[[], None],
    ) -> None:
        self._manager = manager
        self.session_id = session_id
        self.run_id = run_id
        self.provider = provider
        self.on_event = on_event
        self._cancel = cancel
        self.capacity = manager.event_buffer_size
        #: the events queued and not yet handed to the store
        self.buffer: list[Event] = []
        #: a fresh event may be appended to ``buffer`` as made: the queue is open and
        #: there are no ``asm_transform_event`` hooks to run on it first
        self.takes_fresh = not manager._transforms
        #: the task waits for work (:meth:`wake` it)
        self.idle = False
        self.error: AsmError | None = None
        self.store_failed = False
        self._closed = False
        self._append, self._takes_signal = _append_for(manager.store, owned=not manager._transforms)
        self._has_work = trio.Event()
        self._has_space = trio.Event()
        self._done = trio.Event()

    @property
    def closed(self) -> bool:
        """:meth:`close` was called: the run has ended and queues nothing more."""
        return self._closed

    def wake(self) -> None:
        """Wake the idle task: there is work."""
        self.idle = False
        self._has_work.set()

    async def put(self, data: EventData) -> None:
        """Queue the events for ``data``, as the transform hooks leave them
        (waits only while the queue is full)."""
        if self._closed:
            raise AsmError("invalid_operation", f"run {self.run_id} has ended; its emit can no longer be used")
        if self.error is not None:
            raise self.error
        manager = self._manager
        if manager._transforms:
            self.buffer.extend(await manager._make_events(self.session_id, self.run_id, data, self.provider))
        else:  # no hook to run: the one event, without a coroutine and a list for it
            self.buffer.append(new_event(self.session_id, self.run_id, data, self.provider))
        if self.idle:
            self.wake()
        if len(self.buffer) >= self.capacity:
            await self.wait_for_space()

    async def wait_for_space(self) -> None:
        """Wait while the queue is full (backpressure on the provider)."""
        while len(self.buffer) >= self.capacity and self.error is None and not self._done.is_set():
            if self._has_space.is_set():
                self._has_space = trio.Event()  # shared by every task waiting for room
            await self._has_space.wait()

    async def run(self) -> None:
        """Commit and deliver what is queued until :meth:`close` (the run's writer task)."""
        try:
            while True:
                if not self.buffer:
                    if self._closed:
                        return
                    self._has_work = trio.Event()
                    self.idle = True
                    await self._has_work.wait()
                    continue
                await self._flush()
        except AsmError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - a consumer's bug fails the run it watches
            self._fail(AsmError("internal_error", f"an event consumer of run {self.run_id} raised {exc!r}"))
        finally:
            self.idle = False
            if self.buffer and self.error is None:
                # Cancelled from outside: what was accepted is still stored.
                with trio.CancelScope(shield=True):
                    try:
                        await self._flush(deliver=False)
                    except AsmError as exc:
                        self._fail(exc)
            self._has_space.set()
            self._done.set()

    def _fail(self, error: AsmError) -> None:
        self.error = error
        self.takes_fresh = False
        self._cancel()

    async def _flush(self, *, deliver: bool = True) -> None:
        batch = self.buffer[:]
        self.buffer.clear()
        space = self._has_space
        with trio.CancelScope(shield=True):
            try:
                if self._takes_signal:
                    # The provider waits until the store has taken the batch (asm.ports.OwnedAppend).
                    stored = await self._append(batch, space.set)
                else:
                    space.set()
                    stored = await self._append(batch)
            except AsmError:
                self.store_failed = True
                raise
            except Exception as exc:
                self.store_failed = True
                raise AsmError("storage_write_failed", f"the store failed to append events: {exc!r}") from exc
            finally:
                space.set()
        if deliver:
            await self._manager._deliver(stored, self.on_event)

    async def close(self) -> None:
        """Stop accepting events and wait until everything queued is stored and delivered."""
        self._closed = True
        self.takes_fresh = False
        self.wake()
        await self._done.wait()


def new_event(session_id: str, run_id: str | None, data: EventData, provider: str | None) -> Event:
    """The event for ``data`` before the ``asm_transform_event`` hooks: text that is not
    valid Unicode is recorded with U+FFFD in its place (asm._unicode)."""
    if not _ascii_delta(data):
        data = scrub(data)
    return _fresh_event(session_id, run_id, data, provider)


def _ascii_delta(data: EventData) -> bool:
    """A streamed delta of ASCII text: the usual event, with nothing for ``scrub`` to
    replace, so it is not walked (a check in O(1): ``str.isascii`` reads a flag)."""
    if isinstance(data, MessageStreamed):
        return data.delta.isascii() and (data.stream is None or data.stream.isascii())
    return isinstance(data, ThinkingStreamed) and data.delta.isascii()


def _append_for(store: SessionStore, *, owned: bool) -> tuple[Append, bool]:
    """The store's ``append_events``, or its ``append_owned_events`` (:class:`asm.ports.OwnedAppend`)
    for ``owned`` events (no transform hook may have kept a reference to one) when the class
    that defines it also defines the ``append_events`` in effect (not a subclass's override,
    nor a wrapper around the instance's); and whether it is the latter (it takes ``on_taken``)."""
    append = store.append_events
    if owned:
        home = next((cls for cls in type(store).__mro__ if "append_owned_events" in vars(cls)), None)
        if home is not None and getattr(append, "__func__", None) is vars(home).get("append_events"):
            return store.append_owned_events, True  # type: ignore[attr-defined]
    return append, False
