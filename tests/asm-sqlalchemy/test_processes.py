"""Several OS processes on one database: gap-free seqs, cross-process wake-ups,
SIGKILL in the middle of a run, and recovery of the run it left running."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio
from asm_sqlalchemy import SqlAlchemyStore

from asm import EchoProvider, Page, ProcessIdentity, Run, RunOwner, RunStatus, Session, SessionManager, SessionStatus
from asm.owners import current_owner, group_running, process_identity
from asm.providers.scripted import ScriptedProvider

CHILD = str(Path(__file__).resolve().parent / "_child.py")

pytestmark = pytest.mark.integration


def spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, CHILD, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def test_8_processes_appending_to_one_session_get_seqs_exactly_1_to_n(url: str) -> None:
    """8 writer processes x 150 events, in batches of 1..13: the log is exactly 1..1200."""
    async with SqlAlchemyStore(url) as store:
        session = Session(id="ses_shared", agent_id="writers")
        await store.save_session(session)
    writers, per_writer = 8, 150
    children = [spawn("append", url, session.id, str(per_writer), str(1 + (i * 5) % 13)) for i in range(writers)]
    for child in children:
        out, err = await trio.to_thread.run_sync(child.communicate)
        assert child.returncode == 0, err
        assert out.strip() == "done"
    async with SqlAlchemyStore(url) as store:
        page = await store.read_events(session.id)
        total = writers * per_writer
        assert [e.seq for e in page.events] == list(range(1, total + 1))
        assert len({e.id for e in page.events}) == total
        assert await store.latest_seq(session.id) == total


async def test_wait_for_events_wakes_on_another_process_append(url: str) -> None:
    """A waiter with no timeout returns the event another process appended."""
    async with SqlAlchemyStore(url, poll_interval=0.01) as store:
        session = Session(id="ses_wake", agent_id="wake")
        await store.save_session(session)
        child = spawn("append-on-line", url, session.id, stdin=subprocess.PIPE)
        assert child.stdin is not None and child.stdout is not None
        try:
            assert await trio.to_thread.run_sync(child.stdout.readline) == "ready\n"
            pages: list[Page] = []

            async def wait(after: int) -> None:
                pages.append(await store.wait_for_events(session.id, after=after, timeout=None))

            for expected in (1, 2):
                pages.clear()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(wait, expected - 1)
                    await trio.sleep(0.05)  # let the waiter block (a guard, not a timing assertion)
                    child.stdin.write(f"hello {expected}\n")
                    child.stdin.flush()
                    line = await trio.to_thread.run_sync(child.stdout.readline)
                    assert line == f"appended {expected}\n"
                (page,) = pages
                assert [e.seq for e in page.events] == [expected]
                assert page.events[0].data.delta == f"hello {expected}"  # type: ignore[attr-defined]
        finally:
            child.stdin.close()
            await trio.to_thread.run_sync(child.wait)
            child.stdout.close()
            if child.stderr is not None:
                child.stderr.close()


async def test_sigkill_50_times_loses_no_delivered_event(tmp_path: Path) -> None:
    """50 x: a child streams a run into a SQLite file and is SIGKILLed at a
    random point; every event its on_event callback reported is in the
    database, seqs are gap-free, and PRAGMA integrity_check is ok."""
    rng = random.Random(20261125)
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    async with SqlAlchemyStore(url):
        pass  # create the schema once; children open an existing database
    kill_points = [rng.randint(1, 1000) for _ in range(50)]

    def stream_and_kill(kill_after: int) -> list[tuple[int, str]]:
        child = spawn("stream", url, "1200")
        assert child.stdout is not None
        reported: list[tuple[int, str]] = []
        while len(reported) < kill_after:
            line = child.stdout.readline()
            if not line.endswith("\n"):
                break
            seq, event_id = line.split()
            reported.append((int(seq), event_id))
        os.kill(child.pid, signal.SIGKILL)
        # Whole lines written before the kill were reported too (the last may be cut short).
        for line in child.stdout.read().split("\n")[:-1]:
            seq, event_id = line.split()
            reported.append((int(seq), event_id))
        child.communicate()
        return reported

    delivered_total = 0
    limiter = trio.CapacityLimiter(4)
    results: list[list[tuple[int, str]]] = []

    async def one(kill_after: int) -> None:
        results.append(await trio.to_thread.run_sync(stream_and_kill, kill_after, limiter=limiter))

    async with trio.open_nursery() as nursery:  # four children stream into the file at a time
        for kill_after in kill_points:
            nursery.start_soon(one, kill_after)
    with sqlite3.connect(tmp_path / "killed.db") as db:
        stored = dict(db.execute("SELECT id, seq FROM asm_events").fetchall())
        for reported in results:
            delivered_total += len(reported)
            for seq, event_id in reported:
                assert stored.get(event_id) == seq, f"delivered event {event_id} (seq {seq}) is not in the database"
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for (session_id,) in db.execute("SELECT DISTINCT session_id FROM asm_events"):
            query = "SELECT seq FROM asm_events WHERE session_id = ? ORDER BY seq"
            seqs = [s for (s,) in db.execute(query, (session_id,))]
            assert seqs == list(range(1, len(seqs) + 1))
    print(f"50 kills, {delivered_total} delivered events, all in the database")
    assert delivered_total >= 50


async def test_recover_marks_a_dead_process_run_failed_interrupted(url: str) -> None:
    """A process executing a run is SIGKILLed: the run stays running until
    recover_interrupted_runs marks it failed (kind interrupted) and appends run_failed."""
    child = spawn("stall", url)
    assert child.stdout is not None
    line = await trio.to_thread.run_sync(child.stdout.readline)
    word, run_id, session_id = line.split()
    assert word == "running"
    async with SqlAlchemyStore(url) as store:
        assert await store.recover_interrupted_runs() == [], "a live process's run is not interrupted"
        os.kill(child.pid, signal.SIGKILL)
        await trio.to_thread.run_sync(child.communicate)
        assert (await store.get_run(run_id)).status is RunStatus.RUNNING
        assert await store.recover_interrupted_runs() == [run_id]
        run = await store.get_run(run_id)
        assert run.status is RunStatus.FAILED
        assert run.error is not None and run.error.provider_error is not None
        assert run.error.provider_error.kind == "interrupted"
        last = (await store.read_events(session_id)).events[-1]
        assert last.type == "run_failed" and last.run_id == run_id
        assert await store.recover_interrupted_runs() == [], "recovery happens once"


async def test_two_processes_racing_on_200_pending_runs_execute_each_exactly_once(url: str) -> None:
    """Two processes execute the same 200 pending runs at once: every run is claimed by
    one of them (the other gets invalid_operation and emits nothing), so each run's log
    has exactly one run_started and one run_completed."""
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=ScriptedProvider(["ran"]))  # what the children run
        session = await manager.start_session(agent_id="race")
        await manager.activate_session(session.id)
        run_ids = [(await manager.start_run(session.id, f"job {i}")).id for i in range(200)]
    # The same order in both: each run is claimed by both at about the same moment.
    children = [spawn("execute", url, *run_ids, stdin=subprocess.PIPE) for _ in range(2)]
    for child in children:
        assert child.stdout is not None
        assert (await trio.to_thread.run_sync(child.stdout.readline)).strip() == "ready"
    for child in children:  # both start together
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    totals = []
    for child in children:
        out, err = await trio.to_thread.run_sync(child.communicate)
        assert child.returncode == 0, err
        word, ran, word2, refused = out.split()
        assert (word, word2) == ("ran", "refused")
        totals.append((int(ran), int(refused)))
    assert sum(ran for ran, _ in totals) == 200 and sum(refused for _, refused in totals) == 200
    async with SqlAlchemyStore(url) as store:
        events = (await store.read_events(session.id)).events
        for run_id in run_ids:
            kinds = [e.type for e in events if e.run_id == run_id]
            assert kinds == ["run_started", "message_sent", "message_streamed", "run_completed"], (run_id, kinds)
            assert (await store.get_run(run_id)).status is RunStatus.COMPLETED


async def test_recover_ends_the_one_shot_session_of_a_killed_run_once(url: str, tmp_path: Path) -> None:
    child = spawn("stall-once", url, str(tmp_path / "pgid"))
    assert child.stdout is not None
    word, run_id, session_id = (await trio.to_thread.run_sync(child.stdout.readline)).split()
    assert word == "running"
    pgid = int((tmp_path / "pgid").read_text())
    async with SqlAlchemyStore(url) as store:
        running = await store.get_run(run_id)
        assert running.owner is not None and running.owner.process.pid == child.pid
        assert [group.pid for group in running.owner.process_groups] == [pgid]
        os.kill(child.pid, signal.SIGKILL)
        await trio.to_thread.run_sync(child.communicate)
        assert await store.recover_interrupted_runs() == [run_id]
        assert not group_running(pgid), "the killed owner's agent process group was left running"
        session = await store.get_session(session_id)
        assert session.one_shot and session.status is SessionStatus.FAILED
        kinds = [e.type for e in (await store.read_events(session_id)).events]
        assert kinds[-2:] == ["run_failed", "session_failed"]


def sleeper_in_its_own_group() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], process_group=0)


async def _running_run(store: SqlAlchemyStore, owner: RunOwner) -> Run:
    manager = SessionManager(store, provider=EchoProvider())
    session = await manager.start_session(agent_id="recover")
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "go")
    running = attrs.evolve(run, status=RunStatus.RUNNING, owner=owner)
    await store.save_run(running)
    return running


async def test_recover_tells_a_reused_pid_from_the_owner_that_had_it(url: str) -> None:
    """The PID of the run's owner now belongs to another process (a container restart):
    the run is recovered. The same PID with the owner's start time is alive: left alone."""
    me = current_owner()
    assert me.process.started is not None, "this test needs /proc (Linux)"
    reused = attrs.evolve(me, process=ProcessIdentity(me.process.pid, me.process.started - 1))
    async with SqlAlchemyStore(url) as store:
        alive = await _running_run(store, me)
        dead = await _running_run(store, reused)
        assert await store.recover_interrupted_runs() == [dead.id]
        assert (await store.get_run(alive.id)).status is RunStatus.RUNNING
        failed = await store.get_run(dead.id)
        assert failed.status is RunStatus.FAILED and failed.error is not None
        assert f"pid {me.process.pid} on {me.host}" in failed.error.message


async def test_recover_stops_the_process_group_a_dead_owner_left_running(url: str) -> None:
    orphan = sleeper_in_its_own_group()
    try:
        gone = attrs.evolve(current_owner(), process=ProcessIdentity(orphan.pid, 1))  # not this process: dead
        owner = attrs.evolve(gone, process_groups=(process_identity(orphan.pid),))
        async with SqlAlchemyStore(url) as store:
            run = await _running_run(store, owner)
            assert await store.recover_interrupted_runs() == [run.id]
        assert await trio.to_thread.run_sync(orphan.wait) == -signal.SIGTERM
    finally:
        orphan.kill()
        orphan.wait()


async def test_recover_leaves_a_group_whose_leader_pid_was_reused(url: str) -> None:
    bystander = sleeper_in_its_own_group()
    try:
        started = process_identity(bystander.pid).started
        assert started is not None
        dead = attrs.evolve(current_owner(), process=ProcessIdentity(bystander.pid, started - 1))
        owner = attrs.evolve(dead, process_groups=(ProcessIdentity(bystander.pid, started - 1),))
        async with SqlAlchemyStore(url) as store:
            run = await _running_run(store, owner)
            assert await store.recover_interrupted_runs() == [run.id]
        assert bystander.poll() is None, "recover killed a process group that only reused the PID"
    finally:
        bystander.kill()
        bystander.wait()
