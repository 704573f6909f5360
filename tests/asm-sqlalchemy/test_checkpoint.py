"""SQLite WAL checkpoints run in a thread of the store's own, never inside a
commit, and still keep the WAL from growing without bound."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import trio
from asm_sqlalchemy import SqlAlchemyStore
from asm_sqlalchemy._checkpoint import WAL_CHECKPOINT_BYTES, WAL_LIMIT_BYTES, Checkpointer, wal_bytes

from asm import Event
from asm.events import MessageStreamed


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "asm-sqlite-checkpoint"]


async def _stream(store: SqlAlchemyStore, wal: Path, appends: int) -> int:
    """Append ``appends`` commits of 1,000 events of 1 KB back to back, as fast as
    the machine goes; the largest the WAL file was after any of them."""
    text = "x" * 1000
    largest = 0
    for _ in range(appends):
        await store.append_events([Event.new(MessageStreamed(text), session_id="ses_wal") for _ in range(1000)])
        largest = max(largest, (await trio.Path(wal).stat()).st_size)
    return largest


async def test_commits_do_not_checkpoint_and_the_wal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "asm.db"
    wal = Path(f"{path}-wal")
    async with SqlAlchemyStore(f"sqlite:///{path}") as store:
        # About 14 times the checkpoint threshold in all, with no pause for the checkpoint
        # thread: however slow the machine, writers that reach the limit wait for it.
        largest = await _stream(store, wal, 40)
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer.checkpoints >= 1
        # The store's own connections never checkpoint inside a commit.
        with store._engine.connect() as conn:  # type: ignore[union-attr]
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    # Without checkpoints the WAL would hold all ~58 MB written.
    assert largest < WAL_LIMIT_BYTES, largest
    assert _checkpoint_threads() == [], "closing the store stops its checkpoint thread"
    # Closing the last connection checkpoints the rest: every event is in the database file.
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM asm_events").fetchone() == (40_000,)
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_the_wal_stays_bounded_when_passive_checkpoints_never_catch_up(tmp_path: Path) -> None:
    # A loaded machine: the checkpoint thread's PASSIVE checkpoints never catch up with
    # the writers (here they never run at all), so the WAL never starts over by itself.
    path = tmp_path / "asm.db"
    wal = Path(f"{path}-wal")
    async with SqlAlchemyStore(f"sqlite:///{path}") as store:
        await store.open()
        checkpointer = store._checkpointer
        assert checkpointer is not None
        checkpointer.every = 10**15
        limit = checkpointer.limit = checkpointer._next_attempt = 3 * WAL_CHECKPOINT_BYTES
        largest = await _stream(store, wal, 20)
        # Past the limit, each writer waited (after its commit) for a checkpoint that
        # emptied the WAL: ~29 MB written, the limit is 12 MB, so at least twice.
        assert checkpointer.truncations >= 2
    assert largest < limit, largest
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM asm_events").fetchone() == (20_000,)


def _commit(db: sqlite3.Connection, checkpointer: Checkpointer, nbytes: int) -> None:
    db.execute("INSERT INTO t VALUES (?)", ("y" * nbytes,))
    checkpointer.wrote(wal_bytes(nbytes, 1))


def test_a_reader_holding_old_frames_lets_writers_go_on_and_the_wal_is_emptied_after_it_leaves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "asm.db"
    wal = Path(f"{path}-wal")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("CREATE TABLE t (v TEXT)")
    checkpointer = Checkpointer(str(path), every=10**15, limit=200_000, busy_timeout=0.05)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        _commit(writer, checkpointer, 10_000)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchall()  # holds a snapshot that needs the WAL
        for _ in range(60):
            _commit(writer, checkpointer, 10_000)  # never waits for more than one attempt
        assert checkpointer.truncations == 0
        assert wal.stat().st_size > 200_000, "the WAL cannot start over under a reader's snapshot"
        reader.execute("COMMIT")
        _commit(writer, checkpointer, 250_000)  # over the limit again: now it is emptied
        assert checkpointer.truncations == 1
        assert wal.stat().st_size == 0
    finally:
        reader.close()
        writer.close()
        checkpointer.close()
    assert _checkpoint_threads() == []


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
