"""plugins/_template and the plugins ``asm plugin new`` makes from it work outside asm's
repository: asm-core installed from its wheel with plain pip (no uv) into a fresh venv,
the skeleton copied into a folder of its own and ``pip install -e '.[test]'``-ed, its own
tests pass with its own pytest config (trio_mode) - the provider, store and sink contract
suites included; then ``asm plugin new`` (from the installed wheel: the skeleton is its
package data) scaffolds one plugin of each kind, each installs the same way and passes its
own tests, and ``asm plugins`` lists them all. One venv for everything, to keep CI time down."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("provider", "store", "sink", "renderer")
#: Per kind: the command a scaffold's README says its asm.toml block makes work, and what that prints.
README_RUNS = {
    "provider": (("run", "--provider", "demo-provider", "hello"), "Hi, hello\n"),
    "store": (("config", "show"), "# the store in use: demo-store"),
    "sink": (("run", "hello"), "hello\n"),
    "renderer": (("run", "hello"), "hello\n"),
}


def run(*argv: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=1100, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    return result


def assert_all_passed(tests: subprocess.CompletedProcess[str]) -> None:
    summary = tests.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, tests.stdout[-3000:]


@pytest.mark.timeout(1500)  # pip downloads and installs the dependencies: minutes on a busy machine
def test_the_template_and_its_scaffolds_pass_their_tests_in_a_venv_of_their_own(tmp_path: Path) -> None:
    plugin = tmp_path / "asm-template"
    shutil.copytree(ROOT / "plugins" / "_template", plugin, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "VIRTUAL_ENV", "PYTHON", "UV_"))}
    env |= {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    pip = (bin_dir / "python", "-m", "pip")
    run(*pip, "wheel", "--quiet", "--no-deps", "-w", tmp_path / "dist", ROOT / "core", env=env, cwd=tmp_path)
    (core,) = (tmp_path / "dist").glob("asm_core-*.whl")
    shipped = [n for n in zipfile.ZipFile(core).namelist() if n.startswith("asm/_plugin_template/")]
    assert "asm/_plugin_template/src/asm_template/sink.py.tmpl" in shipped, shipped
    run(*pip, "install", "--quiet", f"{core}[testing]", "-e", f"{plugin}[test]", env=env, cwd=tmp_path)

    assert_all_passed(run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", env=env, cwd=plugin))

    scaffolds = tmp_path / "scaffolds"
    scaffolds.mkdir()
    for kind in KINDS:
        made = run(bin_dir / "asm", "plugin", "new", f"asm-demo-{kind}", "--kind", kind, env=env, cwd=scaffolds)
        assert made.stdout.startswith(f"created asm-demo-{kind} in asm-demo-{kind} ({kind} 'demo-{kind}'")
    editable = [arg for kind in KINDS for arg in ("-e", f"{scaffolds / f'asm-demo-{kind}'}[test]")]
    run(*pip, "install", "--quiet", *editable, env=env, cwd=tmp_path)
    for kind in KINDS:
        where = scaffolds / f"asm-demo-{kind}"
        assert_all_passed(run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", env=env, cwd=where))

    for kind in KINDS:  # the README's asm.toml block works as the README says
        readme = (scaffolds / f"asm-demo-{kind}" / "README.md").read_text(encoding="utf-8")
        (block,) = re.findall(r"^```toml\n(.*?)^```", readme, re.M | re.S)
        project = tmp_path / f"project-{kind}"
        project.mkdir()
        (project / "asm.toml").write_text(block, encoding="utf-8")
        argv, shows = README_RUNS[kind]
        result = run(bin_dir / "asm", *argv, env=env, cwd=project)
        assert shows in result.stdout and "warning" not in result.stderr, (kind, result.stdout, result.stderr)
        output = project / "asm-output.txt"
        if kind == "sink":  # the compact renderer's text, appended by the scaffold's sink
            assert ">> hello" in output.read_text(encoding="utf-8")
        elif kind == "renderer":  # the scaffold's renderer, written by asm's file sink
            assert output.read_text(encoding="utf-8") == "hello [completed]\n"
        else:
            assert not output.exists()

    listing = run(bin_dir / "asm", "plugins", env=env, cwd=tmp_path).stdout
    assert "BROKEN" not in listing, listing
    for kind in KINDS:
        assert f"asm-demo-{kind} 0.1.0" in listing and f"demo-{kind}" in listing, listing
    assert "asm-template 0.1.0" in listing, listing
