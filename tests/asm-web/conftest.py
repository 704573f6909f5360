"""Fixtures of the asm-web tests (helpers: ``_asm_web_helpers``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _asm_web_helpers import Gate


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``ASM_*`` variable or user config leaks in; the cwd is an empty project dir."""
    for name in list(os.environ):
        if name.startswith("ASM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def gate() -> Gate:
    return Gate()
