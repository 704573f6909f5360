"""Shared fixtures of the asm-core tests (kept small on purpose)."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest


@attrs.frozen
class Places:
    """Where an isolated test's config lives: the project dir (the cwd) and the user
    config file, where platformdirs looks for it on Linux (``$XDG_CONFIG_HOME/asm``)."""

    project: Path
    user_config: Path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Places:
    """No ``ASM_*`` variable and no config of the developer's leaks in: the cwd is an
    empty project dir and the user config dir (``XDG_CONFIG_HOME``) is under ``tmp_path``.
    Subprocesses inherit the same environment."""
    for name in list(os.environ):
        if name.startswith("ASM_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return Places(project=project, user_config=home / ".config" / "asm" / "asm.toml")


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Install a one-module plugin distribution for real: a ``.dist-info`` with an
    ``asm`` entry point, on ``sys.path`` and on ``PYTHONPATH`` for subprocesses.
    ``install_plugin("asm-hello", "hello", source)`` -> the site dir."""
    site = tmp_path / "site-packages"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))

    def install(distribution: str, entry_point: str, source: str, *, version: str = "1.0") -> Path:
        module = f"{distribution.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[asm]\n{entry_point} = {module}\n")
        monkeypatch.delitem(sys.modules, module, raising=False)  # unimported again at teardown
        importlib.invalidate_caches()
        return site

    return install
