"""plugins/_template works outside asm's repository: copied into a folder of its own,
installed with plain pip (``pip install -e '.[test]'``) next to an asm-core wheel in a
fresh venv, its own tests pass with its own pytest config (trio_mode) - the provider
contract suite included."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=1100, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.mark.timeout(1200)  # pip downloads and installs the dependencies: minutes on a busy machine
def test_the_template_s_tests_pass_in_a_venv_of_its_own(tmp_path: Path) -> None:
    plugin = tmp_path / "asm-template"
    shutil.copytree(ROOT / "plugins" / "_template", plugin, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "VIRTUAL_ENV", "PYTHON", "UV_"))}
    env |= {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    venv.create(tmp_path / "venv", with_pip=True)
    pip = (tmp_path / "venv" / "bin" / "python", "-m", "pip")
    run(*pip, "wheel", "--quiet", "--no-deps", "-w", tmp_path / "dist", ROOT / "core", env=env, cwd=tmp_path)
    (core,) = (tmp_path / "dist").glob("asm_core-*.whl")
    run(*pip, "install", "--quiet", f"{core}[testing]", "-e", f"{plugin}[test]", env=env, cwd=tmp_path)

    tests = run(
        tmp_path / "venv" / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", env=env, cwd=plugin
    )

    assert " passed" in tests.stdout and "failed" not in tests.stdout and "skipped" not in tests.stdout
