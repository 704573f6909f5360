"""asm db compact and asm db retention, and [retention] on the SQL store."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import trio
from asm_sqlalchemy import SqlAlchemyStore

from asm import EventType, SessionManager
from asm.cli import run_cli
from asm.continuity import transcript
from asm.events import EventsCompacted
from asm.providers.scripted import EchoProvider
from asm.runtime import open_runtime


async def _sessions(url: str, count: int) -> list[str]:
    """``count`` sessions of two echo runs each (5 deltas a run)."""
    ids = []
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=EchoProvider())
        for _ in range(count):
            session = await manager.start_session(agent_id="a")
            await manager.activate_session(session.id)
            for _ in range(2):
                await manager.execute_run((await manager.start_run(session.id, "one two three four five")).id)
            ids.append(session.id)
    return ids


def cli(*args: str) -> tuple[int, str, str]:
    """The command in this process: (exit status, stdout, stderr). A plugin's command
    writes to ``sys.stdout``, redirected here."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out):
        status = run_cli(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


async def _types(url: str, session_id: str) -> list[EventType]:
    async with SqlAlchemyStore(url) as store:
        return [e.type for e in (await store.read_events(session_id)).events]


def test_db_compact_a_session_then_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'asm.db'}"
    first, second, third = trio.run(_sessions, url, 3)
    status, out, err = cli("db", "compact", first, "--url", url)
    assert (status, err) == (0, "")
    assert out == f"{first}: 10 deltas of 2 runs compacted into 2 markers (8 fewer events)\n"
    types = trio.run(_types, url, first)
    assert EventType.MESSAGE_STREAMED not in types and types.count(EventType.EVENTS_COMPACTED) == 2
    assert (
        cli("db", "compact", first, "--url", url)[1]
        == f"{first}: 0 deltas of 0 runs compacted into 0 markers (0 fewer events)\n"
    )

    status, out, _ = cli("db", "compact", "--all", "--older-than", "1", "--url", url)
    assert (status, out) == (0, "compacted 0 deltas into 0 markers (0 fewer events)\n"), "the runs ended just now"
    status, out, _ = cli("db", "compact", "--all", "--url", url)
    assert status == 0 and out.splitlines() == [
        f"{sid}: 10 deltas of 2 runs compacted into 2 markers (8 fewer events)" for sid in sorted([second, third])
    ] + ["compacted 20 deltas into 4 markers (16 fewer events)"]


def test_db_compact_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'asm.db'}"
    (sid,) = trio.run(_sessions, url, 1)
    status, _, err = cli("db", "compact", "ses_missing", "--url", url)
    assert status == 1 and err.startswith("asm: error [session_not_found]")
    for args in (["--older-than", "-1"], ["--older-than", "soon"], ["--older-than", "nan"]):
        status, _, err = cli("db", "compact", sid, *args, "--url", url)
        assert status == 2 and err.startswith("asm: error [validation_error]"), (args, err)
    for args in ([], [sid, "--all"]):
        status, _, err = cli("db", "compact", *args, "--url", url)
        assert status == 2 and "a session id or --all" in err, (args, err)
    assert EventType.MESSAGE_STREAMED in trio.run(_types, url, sid), "a refused command changed nothing"


def test_db_retention_shows_and_applies_the_policy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'asm.db'}"
    first, second = trio.run(_sessions, url, 2)
    config = tmp_path / "asm.toml"
    config.write_text("[retention]\nafter_days = 0\nmax_session_events = 20\n")
    status, out, err = cli("db", "retention", "-c", str(config), "--url", url)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[:3] == [
        "[retention]",
        "  after_days = 0 - a run's streamed deltas are compacted as soon as it ends",
        "  max_session_events = 20 - a session holding this many events is compacted, then refuses new runs "
        "if it still does",
    ]
    assert lines[3] == (
        "2 sessions hold streamed deltas from before the cutoff; `asm db retention --apply` compacts those of "
        "answered runs"
    )
    assert sorted(lines[4:]) == sorted(
        f"{sid}: 24 events, at the cap of 20: it takes no new run" for sid in (first, second)
    )

    status, out, _ = cli("db", "retention", "--apply", "-c", str(config), "--url", url)
    assert status == 0 and "applied: 20 deltas compacted into 4 markers (16 fewer events)" in out
    assert "at the cap" not in out, "compacted, each session holds 16 events"
    config.write_text("[retention]\nafter_day = 0\n")
    status, _, err = cli("db", "retention", "-c", str(config), "--url", url)
    assert status == 2 and err.startswith("asm: error [invalid_config]") and "after_day" in err


async def test_after_days_0_on_sqlite_compacts_each_run_as_it_ends(tmp_path: Path) -> None:
    (tmp_path / "asm.toml").write_text(
        f'store = "sqlite"\n[stores.sqlite]\npath = "{tmp_path / "asm.db"}"\n[retention]\nafter_days = 0\n'
    )
    async with open_runtime(config_file=tmp_path / "asm.toml", provider="echo") as runtime:
        manager = runtime.manager
        session = await manager.start_session(agent_id="a")
        await manager.activate_session(session.id)
        for _ in range(3):
            await manager.execute_run((await manager.start_run(session.id, "one two three")).id)
        log = (await runtime.store.read_events(session.id)).events
        assert [e.data.count for e in log if isinstance(e.data, EventsCompacted)] == [3, 3, 3]
        assert not [e for e in log if e.type is EventType.MESSAGE_STREAMED]
        messages = (await transcript(runtime.store, session.id)).messages
        assert [m.content for m in messages] == ["one two three"] * 6
