"""The asm command with input that is not valid Unicode, on the embedded SQLite default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ASM = str(Path(sys.executable).parent / "asm")


def test_a_prompt_of_bytes_that_are_not_utf8_runs_and_is_stored_with_replacement_characters(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("ASM_LOAD_PLUGINS", None)
    run = subprocess.run([ASM, "run", b"bad \xff\xfe"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode("utf-8") == "bad \ufffd\ufffd\n"
    listed = subprocess.run([ASM, "sessions", "list"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert listed.returncode == 0, listed.stderr.decode()
    assert b" completed " in listed.stdout


def test_asm_run_workspace_rolls_back_what_a_failed_shell_run_changed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        **{f"GIT_{who}_{what}": "t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")},
    }
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("original\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, env=env)
    script = "echo changed > a.txt; echo new > b.txt; exit 3"
    command = [ASM, "run", "--json", "--provider", "shell", "--workspace", str(work), "--", "sh", "-c", script]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    kinds = [line.split('"type":"', 1)[1].split('"', 1)[0] for line in run.stdout.splitlines()]
    assert kinds[-4:] == ["workspace_diff_computed", "workspace_rolled_back", "run_failed", "session_failed"]
    assert (work / "a.txt").read_text() == "original\n" and not (work / "b.txt").exists()
