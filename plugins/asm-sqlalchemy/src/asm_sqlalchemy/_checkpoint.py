"""SQLite WAL checkpoints off the commit path (private).

In WAL mode a commit appends its pages to the ``-wal`` file, and a checkpoint
copies them back into the database file so the WAL can start over. SQLite's
default runs that checkpoint inside whichever commit takes the WAL past 1,000
pages: every few thousand events, one append (and the run waiting on it)
stalls for the copy and its fsyncs, 5-10 ms. The store turns the automatic
checkpoint off on its connections (``wal_autocheckpoint = 0``) and runs the
same PASSIVE checkpoint from a thread of its own instead. That thread needs
the GIL only to start one: the copy runs beside the event loop and the next
commit. When the last connection to the database closes, SQLite checkpoints
what is left, as it always does.

A checkpoint lets the WAL start over only if it copied every frame: the next
writer then begins again at the start of the file. While writers keep
committing during each checkpoint (a loaded machine, a thread that gets little
CPU), none ever catches up, and the WAL grows as long as the writing goes on.
So the WAL has a hard limit: a writer whose commit leaves the file past it
waits, after that commit, for a ``TRUNCATE`` checkpoint (which holds new
writers off while it copies the rest and empties the file). The WAL file is
thus never larger than the limit plus the commits in flight, however fast the
machine. A reader whose snapshot still needs the old frames stops any
checkpoint from emptying the WAL (SQLite's rule); then the attempt gives up
after ``busy_timeout`` seconds, the writers go on, and the next attempt waits
until the WAL has grown by another limit's worth.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Final

__all__ = ["WAL_CHECKPOINT_BYTES", "WAL_LIMIT_BYTES", "Checkpointer", "wal_bytes"]

#: How much a checkpoint waits for: SQLite's own default of 1,000 pages of 4 KiB.
WAL_CHECKPOINT_BYTES: Final = 4000 * 1024
#: The WAL file size past which writers wait for a checkpoint that empties it. Each such wait
#: costs a streaming run 15-20 ms (the copy's fsyncs): at three thresholds a 100,000-event run
#: waited four times, a tenth of its time; at eight, once.
WAL_LIMIT_BYTES: Final = 8 * WAL_CHECKPOINT_BYTES
#: Seconds a checkpoint that empties the WAL waits for writers and readers to let it.
WAL_TRUNCATE_TIMEOUT: Final = 2.0
#: PASSIVE checkpoints in a row while writers keep adding frames during each one.
_PASSIVE_ROUNDS: Final = 3

#: What a row adds to the WAL besides its text: its other columns and index entries (measured).
_ROW_BYTES: Final = 450
#: Pages a commit writes whatever its size (table and index pages, the seq head).
_COMMIT_BYTES: Final = 4 * 4096


def wal_bytes(text_bytes: int, rows: int) -> int:
    """An estimate of what one commit of ``rows`` rows holding ``text_bytes``
    of text (JSON bodies) adds to the WAL; within 25% of the WAL's growth for
    streamed events with bodies of 300 bytes to 5 KB."""
    return text_bytes + rows * _ROW_BYTES + _COMMIT_BYTES


class Checkpointer:
    """Checkpoints the WAL of the SQLite file at ``path`` from a thread of its
    own once writers report ``every`` bytes written (:meth:`wrote`), and makes
    writers wait for one that empties the WAL when its file passes ``limit``.

    The thread starts with the first checkpoint due and lives until
    :meth:`close`; a checkpoint that finds the database busy (another
    checkpoint running) simply leaves the rest to the next one.
    """

    def __init__(
        self,
        path: str,
        *,
        every: int = WAL_CHECKPOINT_BYTES,
        limit: int = WAL_LIMIT_BYTES,
        busy_timeout: float = WAL_TRUNCATE_TIMEOUT,
    ) -> None:
        self.path = path
        self.every = every
        self.limit = limit
        self.busy_timeout = busy_timeout
        #: checkpoints that ran (PASSIVE or TRUNCATE), and TRUNCATE ones that emptied the WAL
        self.checkpoints = 0
        self.truncations = 0
        self._wal = Path(f"{path}-wal")
        self._written = 0
        self._lock = threading.Lock()
        self._truncated = threading.Condition(self._lock)
        self._truncate_wanted = False
        self._attempts = 0  # TRUNCATE attempts finished, successful or not
        self._next_attempt = limit  # the WAL size at which writers next wait for one
        self._due = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def wrote(self, nbytes: int) -> None:
        """Count ``nbytes`` more committed to the WAL (see :func:`wal_bytes`);
        thread-safe, called by writers after they commit (holding no lock).
        Blocks while a checkpoint empties a WAL that is past the limit."""
        with self._lock:
            if self._closed:
                return
            self._written += nbytes
            due = self._written >= self.every
            if due:
                self._written = 0
                self._start()
        if due:
            self._due.set()
        if self._wal_size() >= self._next_attempt:
            self._wait_for_truncation()

    def close(self) -> None:
        """Stop the thread, after the checkpoint it is running (blocking: call from a worker thread)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._truncated.notify_all()
        self._due.set()
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        """Start the thread if it is not running (call holding ``_lock``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="asm-sqlite-checkpoint", daemon=True)
            self._thread.start()

    def _wal_size(self) -> int:
        try:
            return self._wal.stat().st_size
        except OSError:
            return 0  # no WAL yet (or any more)

    def _wait_for_truncation(self) -> None:
        """Ask the thread for a TRUNCATE checkpoint and wait until it has been tried."""
        with self._lock:
            if self._closed:
                return
            ticket = self._attempts
            self._truncate_wanted = True
            self._start()
        self._due.set()
        with self._lock:
            # Writers that crossed the limit together all wait for the same attempt.
            while self._attempts == ticket and not self._closed:
                self._truncated.wait()

    def _loop(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                self._due.wait()
                self._due.clear()
                with self._lock:
                    if self._closed:
                        return
                    truncate, self._truncate_wanted = self._truncate_wanted, False
                try:
                    if connection is None:
                        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                    emptied = self._truncate(connection) if truncate else self._passive(connection)
                except sqlite3.Error:
                    emptied = False  # busy or failing: writers see real errors themselves; the next one retries
                else:
                    self.checkpoints += 1
                if truncate:
                    with self._lock:
                        self._attempts += 1
                        if emptied:
                            self.truncations += 1
                            self._next_attempt = self.limit
                        else:
                            self._next_attempt = self._wal_size() + self.limit
                        self._truncated.notify_all()
        finally:
            if connection is not None:
                connection.close()

    def _passive(self, connection: sqlite3.Connection) -> bool:
        # Never blocks a writer. Frames committed while it copies are left for a
        # follow-up round, which has less to copy and so is likelier to catch up.
        connection.execute("PRAGMA busy_timeout = 0")
        for _ in range(_PASSIVE_ROUNDS):
            busy, log, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy or copied in (-1, log):  # done, or another checkpoint / a reader is in the way
                break
        return False

    def _truncate(self, connection: sqlite3.Connection) -> bool:
        # Holds new writers off (they wait in their busy handler) while it copies what
        # is left, waits for readers to leave the WAL, and truncates it to zero bytes.
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy
