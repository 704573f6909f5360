"""Fixtures of the asm-shell tests: a session-wide check that no process outlives the tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

import fake_cli


@pytest.fixture(scope="session", autouse=True)
def no_process_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every command the tests start inherits a unique directory on ``PATH``;
    after the session no process carrying it may be running, and the test
    process has no child left (alive or zombie)."""
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
