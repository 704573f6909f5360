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
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Final

__all__ = ["WAL_CHECKPOINT_BYTES", "Checkpointer", "wal_bytes"]

#: How much a checkpoint waits for: SQLite's own default of 1,000 pages of 4 KiB.
WAL_CHECKPOINT_BYTES: Final = 4000 * 1024

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
    own once writers report ``every`` bytes written (:meth:`wrote`).

    The thread starts with the first checkpoint due and lives until
    :meth:`close`; a checkpoint that finds the database busy (another
    checkpoint running) simply leaves the rest to the next one.
    """

    def __init__(self, path: str, *, every: int = WAL_CHECKPOINT_BYTES) -> None:
        self.path = path
        self.every = every
        self.checkpoints = 0
        self._written = 0
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def wrote(self, nbytes: int) -> None:
        """Count ``nbytes`` more committed to the WAL (see :func:`wal_bytes`);
        thread-safe, called by writers after they commit."""
        with self._lock:
            self._written += nbytes
            if self._written < self.every or self._closed:
                return
            self._written = 0
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="asm-sqlite-checkpoint", daemon=True)
                self._thread.start()
        self._due.set()

    def close(self) -> None:
        """Stop the thread, after the checkpoint it is running (blocking: call from a worker thread)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._due.set()
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._closed:
                    return
                try:
                    if connection is None:
                        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    continue  # busy or failing: writers see real errors themselves; the next one retries
                self.checkpoints += 1
        finally:
            if connection is not None:
                connection.close()
