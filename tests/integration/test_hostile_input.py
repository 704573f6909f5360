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
