"""Cross-process wake-ups for ``wait_for_events`` (private).

PostgreSQL: every append transaction sends ``NOTIFY asm_events, '<session id>'``
(delivered on commit); a waiter holds a connection that LISTENs and waits,
with trio, for its socket to become readable. SQLite: a waiter polls
``PRAGMA data_version`` on a connection of its own, which changes whenever
another connection commits. Waiting connections are pooled and reused.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import trio
from sqlalchemy import Engine

__all__ = ["Waker", "open_waker"]

Changed = Callable[[], Awaitable[None]]


class Waker(Protocol):
    """Hands out watches: ``async with waker.watch(session_id) as changed``;
    ``await changed()`` returns when another process may have appended to the
    session since the watch began (or since ``changed`` last returned)."""

    def watch(self, session_id: str) -> contextlib.AbstractAsyncContextManager[Changed]:
        """Start watching ``session_id``."""
        ...

    def close(self) -> None:
        """Close pooled connections (sync; call from a thread)."""
        ...


def open_waker(engine: Engine, *, poll_interval: float) -> Waker:
    """The waker for ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return _NotifyWaker(engine, poll_interval=poll_interval)
    return _PollWaker(engine, poll_interval=poll_interval)


class _Pool:
    def __init__(self, connect: Callable[[], Any], close: Callable[[Any], None]) -> None:
        self._connect = connect
        self._close = close
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    async def get(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return await trio.to_thread.run_sync(self._connect)

    def put(self, connection: Any) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < 16:
                self._idle.append(connection)
                return
        self._close(connection)

    def release(self, connection: Any, *, reusable: bool) -> None:
        """Back to the pool, or closed if it may be broken or still in use."""
        if reusable:
            self.put(connection)
        else:
            self.discard(connection)

    def discard(self, connection: Any) -> None:
        with contextlib.suppress(Exception):
            self._close(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            self.discard(connection)


class _PollWaker:
    def __init__(self, engine: Engine, *, poll_interval: float) -> None:
        path = engine.url.database
        assert path is not None
        self._poll_interval = poll_interval
        self._pool = _Pool(lambda: sqlite3.connect(path, check_same_thread=False, timeout=60), lambda c: c.close())

    @contextlib.asynccontextmanager
    async def watch(self, session_id: str) -> AsyncIterator[Changed]:
        connection: sqlite3.Connection = await self._pool.get()

        def version() -> int:
            return int(connection.execute("PRAGMA data_version").fetchone()[0])

        seen = await trio.to_thread.run_sync(version)
        broken = False

        async def changed() -> None:
            nonlocal seen, broken
            while True:
                await trio.sleep(self._poll_interval)
                try:
                    now = await trio.to_thread.run_sync(version)
                except sqlite3.Error:
                    # Say "maybe": the waiter re-reads through the store, where a broken
                    # database fails as an AsmError, and otherwise it goes on polling.
                    broken = True
                    return
                if now != seen:
                    seen = now
                    return

        try:
            yield changed
        except BaseException:
            # A cancelled thread call may still be using the connection: do not reuse it.
            self._pool.release(connection, reusable=False)
            raise
        self._pool.release(connection, reusable=not broken)

    def close(self) -> None:
        self._pool.close()


class _NotifyWaker:
    def __init__(self, engine: Engine, *, poll_interval: float) -> None:
        import psycopg

        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._poll_interval = poll_interval

        def connect() -> psycopg.Connection[Any]:
            connection = psycopg.connect(*cargs, **cparams, autocommit=True)
            connection.execute("LISTEN asm_events")
            return connection

        self._pool = _Pool(connect, lambda c: c.close())

    @contextlib.asynccontextmanager
    async def watch(self, session_id: str) -> AsyncIterator[Changed]:
        connection = await self._pool.get()
        pgconn = connection.pgconn
        broken = False

        def drain() -> bool:
            """Read what has arrived; True if it names the session."""
            pgconn.consume_input()
            hit = False
            while (note := pgconn.notifies()) is not None:
                hit = hit or note.extra.decode() == session_id
            return hit

        try:
            drain()  # notifications from before this watch are stale
        except Exception:  # noqa: BLE001 - a dead pooled connection: use a new one
            self._pool.discard(connection)
            connection = await self._pool.get()
            pgconn = connection.pgconn

        async def changed() -> None:
            nonlocal broken
            while True:
                if broken:
                    await trio.sleep(self._poll_interval)
                    return
                await trio.lowlevel.wait_readable(pgconn.socket)
                try:
                    if drain():
                        return
                except Exception:  # noqa: BLE001 - the listener died: fall back to polling
                    broken = True
                    return

        try:
            yield changed
        finally:
            self._pool.release(connection, reusable=not broken)

    def close(self) -> None:
        self._pool.close()
