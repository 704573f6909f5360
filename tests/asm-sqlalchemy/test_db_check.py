"""``asm db check`` on SQLite and PostgreSQL: a sound database passes; a planted seq
gap, a seq head behind its log, a run stuck ``running`` with a dead owner, an old
schema and a missing file are each reported, with exit status 1."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys

import attrs
import sqlalchemy
import trio
from asm_sqlalchemy import SqlAlchemyStore, head_revision, upgrade

from asm import EchoProvider, ProcessIdentity, RunOwner, SessionManager
from asm.cli import run_cli
from asm.states import RunStatus


async def check(url: str) -> tuple[int, list[str]]:
    """``asm db check --url URL`` (in a thread: the command runs trio itself)."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):  # a plugin command writes to sys.stdout
            return run_cli(["db", "check", "--url", url], stdout=out, stderr=err)

    status = await trio.to_thread.run_sync(run)
    assert err.getvalue() == ""
    return status, out.getvalue().splitlines()


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def a_completed_session(store: SqlAlchemyStore) -> tuple[str, int]:
    manager = SessionManager(store, provider=EchoProvider())
    run = await manager.run_once("one two three four five")
    return run.session_id, await store.latest_seq(run.session_id)


def execute(url: str, sql: str, **params: object) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(sql), params)
    finally:
        engine.dispose()


async def test_a_sound_database_passes(url: str, store: SqlAlchemyStore) -> None:
    await a_completed_session(store)
    await a_completed_session(store)

    status, lines = await check(url)

    assert status == 0, lines
    assert len(lines) == 1 and lines[0].endswith(": ok (integrity, schema, seqs, owners of running runs)")


async def test_a_planted_seq_gap_is_found(url: str, store: SqlAlchemyStore) -> None:
    session_id, latest = await a_completed_session(store)
    execute(url, "DELETE FROM asm_events WHERE session_id = :s AND seq IN (3, 4)", s=session_id)

    status, lines = await check(url)

    assert status == 1
    assert f"seq_gap: session {session_id}: seq 3-4 missing (of 1..{latest})" in lines
    assert lines[-1].endswith(": 1 problem")


async def test_compacted_deltas_are_not_a_gap(url: str, store: SqlAlchemyStore) -> None:
    session_id, _ = await a_completed_session(store)
    compaction = await store.compact_events(session_id)
    assert compaction.removed > 0  # deltas are gone: their seqs are missing but for the marker

    status, lines = await check(url)

    assert status == 0, lines


async def test_a_seq_head_behind_the_log_is_found(url: str, store: SqlAlchemyStore) -> None:
    session_id, latest = await a_completed_session(store)
    execute(url, "UPDATE asm_event_heads SET last_seq = 2 WHERE session_id = :s", s=session_id)

    status, lines = await check(url)

    assert status == 1
    assert f"seq_head: session {session_id}: the seq head says 2 but events go up to {latest}" in lines


async def test_a_run_stuck_running_with_a_dead_owner_is_found(url: str, store: SqlAlchemyStore) -> None:
    manager = SessionManager(store, provider=EchoProvider())
    session = await manager.start_session(agent_id="stuck")
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "hi")
    owner = RunOwner(socket.gethostname(), ProcessIdentity(dead_pid()))
    await store.claim_run(attrs.evolve(run, status=RunStatus.RUNNING, owner=owner))
    alive = await manager.start_run(session.id, "still going")
    await store.claim_run(attrs.evolve(alive, status=RunStatus.RUNNING))  # this process owns it: alive

    status, lines = await check(url)

    assert status == 1
    assert lines == [
        f"stuck_run: run {run.id} is running, but the process that owns it ({owner.describe()}) is gone; "
        "`asm db recover` marks it failed",
        lines[-1],
    ]


async def test_an_old_schema_and_a_missing_file_are_problems(sqlite_url: str, tmp_path: object) -> None:
    await upgrade(sqlite_url, "0001")

    old = await check(sqlite_url)
    missing = await check(sqlite_url.replace("asm.db", "nothing-here.db"))

    assert old[0] == missing[0] == 1
    assert old[1][0] == f"schema: the schema is at revision 0001, not {head_revision()}; run `asm db upgrade`"
    assert missing[1][0].startswith("missing: no SQLite database at ")
