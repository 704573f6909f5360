"""asm-rich with asm-sqlalchemy at a terminal: ``asm sessions list`` / ``show`` as rich tables,
``asm events SID`` through the studio view; the same commands into a pipe keep their plain lines.

Each command runs on a real pseudo-terminal (pexpect); its screen is read back by pyte."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pyte
import pytest

pytestmark = pytest.mark.integration

ASM = Path(sys.executable).with_name("asm")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "NO_COLOR", "FORCE_COLOR"))}
    environment.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"),
        TERM="xterm-256color",
        COLUMNS="120",
        ASM_LOAD_PLUGINS="asm-rich,asm-sqlalchemy",
    )
    (tmp_path / "asm.toml").write_text(f'store = "sqlite"\n\n[stores.sqlite]\npath = "{tmp_path / "asm.db"}"\n')
    return environment


def on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> pyte.Screen:
    """Run ``asm ARGS`` on a 120 x 40 pseudo-terminal to its end; the final screen."""
    screen = pyte.Screen(120, 40)
    stream = pyte.Stream(screen)
    child = pexpect.spawn(str(ASM), args, env=env, cwd=str(cwd), dimensions=(40, 120), encoding="utf-8", timeout=60)
    stream.feed(child.read())  # everything, to the end
    child.close()
    assert child.exitstatus == 0, "\n".join(screen.display)
    return screen


def rows(screen: pyte.Screen) -> list[str]:
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def run(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([str(ASM), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def session_of(env: dict[str, str], cwd: Path) -> str:
    run(env, cwd, "run", "--provider", "echo", "hello there")
    return run(env, cwd, "sessions", "list", "--json").split('"id": "')[1].split('"')[0]


def test_sessions_list_on_a_terminal_is_a_rich_table(env: dict[str, str], tmp_path: Path) -> None:
    session_id = session_of(env, tmp_path)
    screen = on_terminal(["sessions", "list"], env, tmp_path)
    lines = rows(screen)
    header = next(line for line in lines if "status" in line)
    assert re.fullmatch(r" id\s+status\s+agent\s+provider\s+runs\s+tokens\s+cost\s+duration\s+created", header), lines
    row_at = next(i for i, line in enumerate(lines) if session_id in line)
    assert re.fullmatch(
        rf" {session_id}  completed  echo   echo  +1 +\d+  \$0\.0000 +\d+\.\ds  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d",
        lines[row_at],
    ), lines
    column = lines[row_at].index("completed")
    assert screen.buffer[row_at][column].fg == "green"  # the status in its colour
    # Into a pipe: the plain lines, as before (no rule, no colour).
    plain = run(env, tmp_path, "sessions", "list")
    assert re.search(rf"^{session_id}  completed  echo ", plain, re.M) and "─" not in plain and "\x1b" not in plain


def test_sessions_show_on_a_terminal_is_two_tables(env: dict[str, str], tmp_path: Path) -> None:
    session_id = session_of(env, tmp_path)
    lines = rows(on_terminal(["sessions", "show", session_id], env, tmp_path))
    text = "\n".join(lines)
    assert f"session {session_id}" in text
    assert " status    completed" in lines and re.search(r"^ events    \d+$", text, re.M), lines
    assert "1 run" in lines
    assert re.search(r"^ run_\w+  completed  echo      echo +\d+ +\d+  \$0\.0000 +\d+\.\ds$", text, re.M), text


def test_asm_events_on_a_terminal_replays_through_the_studio_view(env: dict[str, str], tmp_path: Path) -> None:
    session_id = session_of(env, tmp_path)
    for args in (["events", session_id], ["events", session_id, "--follow"]):
        lines = rows(on_terminal(args, env, tmp_path))
        assert lines[0] == "hello there", lines
        assert re.fullmatch(r"echo · \d+ in / \d+ out · \$0\.0000 · \d+\.\ds", lines[1]), lines
    verbose = rows(on_terminal(["events", session_id, "--renderer", "verbose"], env, tmp_path))
    assert verbose[0] == "[session_created] agent_id=echo provider=echo"
    assert "[run_completed] stop_reason=end_turn" in "\n".join(verbose)
    # Into a pipe: one line per event, as before.
    assert "message_streamed" in run(env, tmp_path, "events", session_id)
