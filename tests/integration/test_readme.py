"""The README's promises hold: its commands are the ones CI runs, and its tour runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def bash_blocks() -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", README, re.S)]


def test_the_two_setup_commands_come_first_and_ci_runs_the_test_command() -> None:
    main_job, test_command = bash_blocks()[:2]
    assert main_job.startswith("pip install uv==") and "asm run" in main_job
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
    uv_pin = re.search(r"uv==[\d.]+", main_job)
    assert uv_pin is not None and uv_pin.group(0) in ci


def test_the_tour_runs_offline(tmp_path: Path) -> None:
    (tour,) = re.findall(r"```python\n(.*?)```", README, re.S)[:1]
    script = tmp_path / "tour.py"
    script.write_text(tour)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "completed hello" in result.stdout
    assert "timeout timeout" in result.stdout
    assert "['thinking...'] 6" in result.stdout


def test_the_main_job_streams_the_answer(tmp_path: Path) -> None:
    asm_cli = Path(sys.executable).parent / "asm"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    result = subprocess.run(
        [str(asm_cli), "run", "Hello from asm"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from asm\n"
