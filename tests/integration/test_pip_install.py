"""The distributions as a user installs them: wheels built with pip (no uv) from the
repository, ``pip install asm-core asm-claude asm-sqlalchemy`` into a fresh venv (their
dependencies from the package index), then ``asm --version``, the README's main job
(``asm run "Hello from asm"``, then ``asm sessions list``) and ``asm plugins`` there."""

from __future__ import annotations

import os
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {"asm-core": ROOT / "core", "asm-claude": ROOT / "plugins/asm-claude"} | {
    "asm-sqlalchemy": ROOT / "plugins/asm-sqlalchemy"
}


def run(*argv: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.mark.timeout(1200)  # pip downloads and installs the dependencies: minutes on a busy machine
def test_wheels_installed_with_pip_into_a_fresh_venv_run_the_main_job(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "VIRTUAL_ENV", "PYTHON", "UV_"))}
    env |= {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    dist = tmp_path / "dist"
    pip = (bin_dir / "python", "-m", "pip")
    run(*pip, "wheel", "--quiet", "--no-deps", "-w", dist, *DISTRIBUTIONS.values(), env=env, cwd=tmp_path)
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["asm_claude", "asm_core", "asm_sqlalchemy"]
    for wheel in wheels:  # the license goes with every wheel
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zipfile.ZipFile(wheel).namelist()), wheel

    # the wheels by path (an index's project of the same name is never picked), their dependencies from the index
    run(*pip, "install", "--quiet", *wheels, env=env, cwd=tmp_path)
    installed = run(*pip, "list", "--format=freeze", env=env, cwd=tmp_path).stdout
    assert "psycopg" not in installed.lower()  # SQLite users install no PostgreSQL driver

    version = run(bin_dir / "asm", "--version", env=env, cwd=tmp_path)
    answer = run(bin_dir / "asm", "run", "Hello from asm", env=env, cwd=tmp_path)
    listed = run(bin_dir / "asm", "sessions", "list", env=env, cwd=tmp_path)
    plugins = run(bin_dir / "asm", "plugins", env=env, cwd=tmp_path)

    assert version.stdout == "asm 0.1.0\n"
    assert answer.stdout == "Hello from asm\n" and answer.stderr.startswith("session ses_")
    assert answer.stderr.split()[1] in listed.stdout and "completed" in listed.stdout
    assert "asm-claude 0.1.0" in plugins.stdout and "asm-sqlalchemy 0.1.0" in plugins.stdout
    assert "BROKEN" not in plugins.stdout
