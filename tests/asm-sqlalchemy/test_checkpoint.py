"""SQLite WAL checkpoints run in a thread of the store's own, never inside a
commit, and still keep the WAL from growing without bound."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import trio
from asm_sqlalchemy import SqlAlchemyStore
from asm_sqlalchemy._checkpoint import WAL_CHECKPOINT_BYTES, Checkpointer, wal_bytes

from asm import Event
from asm.events import MessageStreamed


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "asm-sqlite-checkpoint"]


async def test_commits_do_not_checkpoint_and_the_wal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "asm.db"
    wal = Path(f"{path}-wal")
    text = "x" * 1000
    largest = 0
    async with SqlAlchemyStore(f"sqlite:///{path}") as store:
        # About 7 times the checkpoint threshold in all.
        for _ in range(20):
            await store.append_events([Event.new(MessageStreamed(text), session_id="ses_wal") for _ in range(1000)])
            largest = max(largest, (await trio.Path(wal).stat()).st_size)
            await trio.sleep(0.01)  # the pace of a streaming run, so the checkpoint thread keeps up
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer.checkpoints >= 3
        # The store's own connections never checkpoint inside a commit.
        with store._engine.connect() as conn:  # type: ignore[union-attr]
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    # Without checkpoints the WAL would hold all ~29 MB written; the WAL is reused after each.
    assert largest < 4 * WAL_CHECKPOINT_BYTES, largest
    assert _checkpoint_threads() == [], "closing the store stops its checkpoint thread"
    # Closing the last connection checkpoints the rest: every event is in the database file.
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM asm_events").fetchone() == (20_000,)
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_the_thread_starts_only_when_a_checkpoint_is_due(tmp_path: Path) -> None:
    path = tmp_path / "asm.db"
    sqlite3.connect(path).close()
    checkpointer = Checkpointer(str(path), every=wal_bytes(10_000, 10))
    checkpointer.wrote(wal_bytes(5_000, 5))
    assert checkpointer._thread is None
    checkpointer.wrote(wal_bytes(5_000, 5))
    assert checkpointer._thread is not None and checkpointer._thread.is_alive()
    checkpointer.close()
    assert not checkpointer._thread.is_alive()
    checkpointer.wrote(10 * WAL_CHECKPOINT_BYTES)  # after close: counted nowhere, nothing started
    assert _checkpoint_threads() == []


def test_a_checkpoint_that_fails_leaves_the_thread_to_try_again(tmp_path: Path) -> None:
    path = tmp_path / "later" / "asm.db"  # its directory does not exist yet: opening it fails
    checkpointer = Checkpointer(str(path), every=1)
    try:
        checkpointer.wrote(1)
        deadline = time.monotonic() + 10
        while checkpointer._due.is_set() and time.monotonic() < deadline:  # until the thread took it up
            time.sleep(0.001)
        path.parent.mkdir()
        sqlite3.connect(path).close()
        checkpointer.wrote(1)
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert checkpointer.checkpoints == 1
    finally:
        checkpointer.close()
    assert _checkpoint_threads() == []
