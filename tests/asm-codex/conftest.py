"""Fixtures of the asm-codex tests: fake ``codex`` executables on PATH, and a
session-wide check that no process outlives the tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

import fake_cli


@pytest.fixture(scope="session", autouse=True)
def no_process_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every process the tests start inherits a unique directory on ``PATH``;
    after the session none carrying it may be running (child, grandchild),
    and the test process has no child left (alive or zombie)."""
    marker = tmp_path_factory.mktemp("leak-marker")
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{old}{os.pathsep}{marker}"
    try:
        yield
    finally:
        os.environ["PATH"] = old
    stray = fake_cli.stray_processes(str(marker))
    assert stray == [], f"processes outlived the test session: {stray}"
    assert fake_cli.unreaped_children() == [], "the test process has unreaped children"


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH for fake CLIs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


@pytest.fixture
def install_fake(fake_bin: Path) -> Callable[..., Path]:
    """``install_fake("codex", stream="codex_exec.jsonl", mode="stall")`` -> the fake's path."""

    def install(name: str, **kwargs: object) -> Path:
        return fake_cli.install(fake_bin, name, **kwargs)  # type: ignore[arg-type]

    return install
