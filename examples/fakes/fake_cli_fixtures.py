"""pytest fixtures for tests that run fake CLIs (see :mod:`fake_cli`).

A test package imports them into its ``conftest.py`` (after putting this
directory on ``sys.path``)::

    from fake_cli_fixtures import fake_bin, install_fake, no_process_left
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import fake_cli
import pytest

__all__ = ["Install", "fake_bin", "install_fake", "no_process_left"]

Install = Callable[..., Path]


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
def install_fake(fake_bin: Path) -> Install:
    """``install_fake("codex", stream="codex_exec.jsonl", mode="stall")`` -> the fake's path, first on PATH."""

    def install(name: str, **kwargs: object) -> Path:
        return fake_cli.install(fake_bin, name, **kwargs)  # type: ignore[arg-type]

    return install
