"""The plugin as users meet it: registered stores, the embedded default,
config errors, and the asm sessions / events / db commands."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from asm_sqlalchemy import SqlAlchemyStore, default_sqlite_path, head_revision, upgrade

from asm import AsmError, load_config, load_plugins
from asm.cli import run_cli
from asm.runtime import assemble, open_runtime

ASM = str(Path(sys.executable).parent / "asm")


def asm_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASM, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_the_plugin_registers_sqlite_and_sqlalchemy_stores() -> None:
    registry = load_plugins()
    assert {"sqlite", "sqlalchemy"} <= set(registry.names("stores"))
    assert registry.get("stores", "sqlite").distribution == "asm-sqlalchemy"
    assert {"sessions", "events", "db"} <= set(registry.names("commands"))


def test_with_no_config_the_store_is_a_sqlite_file_in_the_user_data_dir(tmp_path: Path) -> None:
    runtime = assemble(load_config(env={}, cwd=tmp_path, user_file=tmp_path / "none.toml"))
    assert isinstance(runtime.store, SqlAlchemyStore)
    assert runtime.store.dialect == "sqlite"
    assert runtime.store.url.database == str(default_sqlite_path())
    assert str(default_sqlite_path()).startswith(str(tmp_path / "xdg-data"))


async def test_a_configured_sqlalchemy_url_is_used(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "asm.toml").write_text(f'store = "sqlalchemy"\n[stores.sqlalchemy]\nurl = "{pg_url}"\n')
    async with open_runtime(config_file=tmp_path / "asm.toml", provider="echo") as runtime:
        run = await runtime.run_once("persist me")
        assert isinstance(runtime.store, SqlAlchemyStore) and runtime.store.dialect == "postgresql"
    async with SqlAlchemyStore(pg_url) as store:
        assert (await store.get_run(run.id)).output == "persist me"


def test_a_config_error_names_the_file_and_option(tmp_path: Path) -> None:
    (tmp_path / "asm.toml").write_text('[stores.sqlite]\npathh = "x.db"\n')
    with pytest.raises(AsmError) as caught:
        assemble(load_config(config_file=tmp_path / "asm.toml", env={}))
    assert caught.value.code == "invalid_config"
    assert "pathh" in caught.value.message and "asm.toml" in caught.value.message


def test_the_main_job_persists_and_the_commands_show_it(tmp_path: Path) -> None:
    result = asm_cli("run", "Hello from asm", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from asm\n"
    assert default_sqlite_path().is_file()

    listed = asm_cli("sessions", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (session,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (session["status"], session["agent_id"]) == ("completed", "echo")

    every = asm_cli("events", session["id"], "--json", cwd=tmp_path)
    assert every.returncode == 0, every.stderr
    seqs = [json.loads(line)["seq"] for line in every.stdout.splitlines()]
    count = len(seqs)
    assert seqs == list(range(1, count + 1)) and count > 5

    shown = asm_cli("sessions", "show", session["id"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "status    completed" in shown.stdout and f"events    {count}" in shown.stdout

    streamed = asm_cli("events", session["id"], "--type", "message_streamed", "--json", cwd=tmp_path)
    assert streamed.returncode == 0, streamed.stderr
    deltas = [json.loads(line)["data"]["delta"] for line in streamed.stdout.splitlines()]
    assert "".join(deltas) == "Hello from asm"
    after = asm_cli("events", session["id"], "--after", str(count - 2), cwd=tmp_path)
    assert [line.split()[0] for line in after.stdout.splitlines()] == [str(count - 1), str(count)]

    current = asm_cli("db", "current", cwd=tmp_path)
    assert current.returncode == 0 and "up to date" in current.stdout

    forked = asm_cli("sessions", "fork", session["id"], "--at", "4", cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    fork_id = forked.stdout.split()[0]
    assert forked.stdout == f"{fork_id}  forked from {session['id']} at seq 4\n"
    fork_events = asm_cli("events", fork_id, "--json", cwd=tmp_path)
    assert [json.loads(line)["type"] for line in fork_events.stdout.splitlines()] == [
        json.loads(line)["type"] for line in every.stdout.splitlines()[:4]
    ]
    fork_shown = asm_cli("sessions", "show", fork_id, cwd=tmp_path)
    assert "status    pending" in fork_shown.stdout
    assert f"forked    from {session['id']} at seq 4" in fork_shown.stdout
    beyond = asm_cli("sessions", "fork", session["id"], "--at", str(count + 1), cwd=tmp_path)
    assert beyond.returncode == 2 and beyond.stderr.startswith("asm: error [validation_error]: at_seq=")


def test_commands_report_bad_input_as_one_line_errors(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_cli(["events", "ses_missing"], stdout=out, stderr=err) == 1
    assert err.getvalue().startswith("asm: error [session_not_found]")
    err = io.StringIO()
    assert run_cli(["events", "ses_x", "--type", "bogus"], stdout=out, stderr=err) == 2
    assert err.getvalue().startswith("asm: error [validation_error]")
    err = io.StringIO()
    assert run_cli(["sessions", "list", "--status", "sleeping"], stdout=out, stderr=err) == 2
    assert err.getvalue().startswith("asm: error [validation_error]")
    err = io.StringIO()
    url = "postgresql://bob:hunter2@127.0.0.1:1/x"
    assert run_cli(["db", "current", "--url", url], stdout=out, stderr=err) == 1
    assert err.getvalue().startswith("asm: error [storage_connection_failed]") and "hunter2" not in err.getvalue()


def test_a_misspelt_store_table_is_an_error_in_the_commands_too(tmp_path: Path) -> None:
    """`[stores.sqlitee]` would otherwise be ignored and the default file used."""
    (tmp_path / "asm.toml").write_text(f'[stores.sqlitee]\npath = "{tmp_path / "mine.db"}"\n')
    for args in (["sessions", "list"], ["events", "ses_x"], ["db", "current"]):
        result = asm_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("asm: error [invalid_config]: [stores.sqlitee] (from project config ")
        assert "did you mean [stores.sqlite]?" in result.stderr and len(result.stderr.splitlines()) == 1


async def _stored_runs(tmp_path: Path, *prompts: str) -> list[str]:
    """Run ``prompts`` on the echo provider into the default SQLite file; their session ids."""
    loaded = load_config({"provider": "echo", "redact": False}, env={}, cwd=tmp_path)
    async with open_runtime(loaded) as runtime:
        return [(await runtime.run_once(prompt)).session_id for prompt in prompts]


async def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`asm sessions list | head -1`, `asm events SID | head -1`: quiet, exit 141 (128 + SIGPIPE)."""
    session_id, *_ = await _stored_runs(tmp_path, *(f"words {n} " * 2000 for n in range(3)))
    for args in (["sessions", "list"], ["sessions", "list", "--json"], ["events", session_id]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # nobody reads: the first write fails with EPIPE
        try:
            result = subprocess.run(  # noqa: ASYNC221 - the test has nothing else to do meanwhile
                [ASM, *args], cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120
            )
        finally:
            os.close(write_end)
        assert (result.returncode, result.stderr) == (141, ""), args


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["sessions", "list", "--limit", str(2**63)], "--limit"),
        (["sessions", "list", "--limit", "-1"], "--limit"),
        (["sessions", "list", "--limit", "1" * 5000], "--limit"),
        (["sessions", "list", "--limit", "ten"], "--limit"),
        (["events", "ses_x", "--after", str(2**63)], "--after"),
        (["events", "ses_x", "--after", str(2**64 + 1)], "--after"),
        (["events", "ses_x", "--after", "-1"], "--after"),
    ],
)
def test_numbers_out_of_range_are_validation_errors(args: list[str], option: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_cli(args, stdout=out, stderr=err) == 2
    (line,) = err.getvalue().splitlines()
    assert line.startswith(f"asm: error [validation_error]: argument {option}: "), line
    assert "9223372036854775807" in line or "whole number" in line
    assert len(line) < 300


async def test_the_largest_numbers_are_accepted(tmp_path: Path) -> None:
    (session_id,) = await _stored_runs(tmp_path, "hi")
    listed = asm_cli("sessions", "list", "--limit", str(2**63 - 1), "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["id"] == session_id
    after = asm_cli("events", session_id, "--after", str(2**63 - 1), cwd=tmp_path)
    assert (after.returncode, after.stdout, after.stderr) == (0, "", "")


async def test_db_upgrade_and_current_on_an_old_database(sqlite_url: str, tmp_path: Path) -> None:
    await upgrade(sqlite_url, "0001")
    current = asm_cli("db", "current", "--url", sqlite_url, cwd=tmp_path)
    assert current.returncode == 1 and "revision 0001" in current.stdout and "asm db upgrade" in current.stdout
    upgraded = asm_cli("db", "upgrade", "--url", sqlite_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from 0001 to {head_revision()}" in upgraded.stdout
    async with SqlAlchemyStore(sqlite_url) as store:
        assert await store.health_check() == []


async def test_events_follow_shows_a_run_made_by_another_process(tmp_path: Path) -> None:
    """`asm events SESSION --follow` in one process prints the events of a run
    that another process executes, and exits when the session ends."""
    db = tmp_path / "shared.db"
    (tmp_path / "asm.toml").write_text(f'[stores.sqlite]\npath = "{db}"\npoll_interval = 0.01\n')
    async with open_runtime(config_file=tmp_path / "asm.toml", provider="echo") as runtime:
        session = await runtime.manager.start_session(agent_id="follow")
        await runtime.manager.activate_session(session.id)
        follower = subprocess.Popen(  # noqa: ASYNC220 - read line by line below, in a thread
            [ASM, "events", session.id, "--follow", "--json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        first = await trio.to_thread.run_sync(follower.stdout.readline)  # it is following: it printed seq 1
        assert json.loads(first)["type"] == "session_created"
        run = await runtime.manager.start_run(session.id, "followed words")
        await runtime.manager.execute_run(run.id, provider=runtime.provider("echo"))
        await runtime.manager.complete_session(session.id)
        # Read on through the same buffered reader: communicate() would read the pipe
        # underneath it and lose whatever readline() had already buffered.
        with follower, follower.stdout:
            rest = await trio.to_thread.run_sync(follower.stdout.read)
            err = follower.stderr.read() if follower.stderr is not None else ""
            await trio.to_thread.run_sync(follower.wait)
    assert follower.returncode == 0, err
    events = [json.loads(first)] + [json.loads(line) for line in rest.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "session_completed"
    assert "".join(e["data"]["delta"] for e in events if e["type"] == "message_streamed") == "followed words"


def test_asm_run_session_runs_in_a_stored_session(tmp_path: Path) -> None:
    """`asm run` prints the ids; `asm run --session` on that finished session runs in a copy of
    its whole history (said on stderr) with the conversation replayed; an explicit fork works the
    same; `--resume` on a provider without a native resume (echo) is refused before a run is stored."""
    first = asm_cli("run", "first question", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    session_id, _ = first.stderr.removeprefix("session ").rstrip("\n").split(" \u00b7 run ")

    again = asm_cli("run", "--session", session_id, "--json", "more", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    said, announced = again.stderr.splitlines()
    copy = said.split("continuing in a copy of its history: ")[1].split(" ")[0]
    last = max(
        e["seq"] for e in map(json.loads, asm_cli("events", session_id, "--json", cwd=tmp_path).stdout.splitlines())
    )
    assert said == (
        f"asm: session {session_id} is completed; continuing in a copy of its history: {copy} "
        f"(asm sessions fork {session_id} --at {last})"
    )
    start = next(e for e in map(json.loads, again.stdout.splitlines()) if e["type"] == "run_started")
    assert announced == f"session {copy} \u00b7 run {start['run_id']}"
    assert (start["session_id"], start["data"]["continuation"]) == (copy, "replay")
    sent = [e["data"]["content"] for e in map(json.loads, again.stdout.splitlines()) if e["type"] == "message_sent"]
    assert sent == ["more"]
    kept = json.loads(asm_cli("sessions", "show", session_id, "--json", cwd=tmp_path).stdout)
    assert kept["session"]["status"] == "completed" and len(kept["runs"]) == 1  # the original is untouched

    fork = asm_cli("sessions", "fork", session_id, "--at", "6", cwd=tmp_path).stdout.split()[0]
    resumed = asm_cli("run", "--session", fork, "--resume", "third question", cwd=tmp_path)
    assert (resumed.returncode, resumed.stdout) == (2, "")
    assert resumed.stderr == (
        "asm: error [validation_error]: provider 'echo' cannot resume a conversation of its own; leave out "
        "--resume (the session's conversation is then sent to it)\n"
    )
    replayed = asm_cli("run", "--session", fork, "--json", "second question", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    start = next(e for e in map(json.loads, replayed.stdout.splitlines()) if e["type"] == "run_started")
    assert (start["session_id"], start["data"]["continuation"]) == (fork, "replay")
    assert replayed.stderr == f"session {fork} \u00b7 run {start['run_id']}\n"

    shown = json.loads(asm_cli("sessions", "show", fork, "--json", cwd=tmp_path).stdout)
    assert shown["session"]["status"] == "active"
    assert [run["id"] for run in shown["runs"]] == [start["run_id"]]


def test_config_show_names_the_sqlite_file_even_when_no_store_is_set(tmp_path: Path) -> None:
    shown = asm_cli("config", "show", cwd=tmp_path)
    as_json = asm_cli("config", "show", "--json", cwd=tmp_path)

    assert shown.returncode == as_json.returncode == 0, shown.stderr + as_json.stderr
    assert shown.stdout.endswith(
        f"# the store in use: sqlite (the default, as no store is set); its data: {default_sqlite_path()}\n"
    )
    assert json.loads(as_json.stdout)["store"] == {
        "name": "sqlite",
        "chosen_by": "default",
        "location": str(default_sqlite_path()),
    }
    assert not default_sqlite_path().exists()  # showing where it would be creates nothing


def test_sessions_list_has_a_header_row_and_aligned_columns(tmp_path: Path) -> None:
    for prompt in ("one", "two"):
        assert asm_cli("run", prompt, cwd=tmp_path).returncode == 0
    assert asm_cli("run", "--provider", "scripted", "three", cwd=tmp_path).returncode == 0

    listed = asm_cli("sessions", "list", cwd=tmp_path)

    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["SESSION", "STATUS", "AGENT", "PROVIDER", "CREATED"]
    assert len(rows) == 3 and rows[0].split()[2:4] == ["scripted", "scripted"]
    for column in ("STATUS", "AGENT", "PROVIDER", "CREATED"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in rows), column
