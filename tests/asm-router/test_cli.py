"""``asm router status``: the configured routers, their members and circuits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from asm.cli import run_cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("ASM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "asm-router")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "asm.toml").write_text(
        '[providers.smart]\nplugin = "router"\nmembers = ["echo", "quiet"]\nstrategy = "weighted"\n'
        'weights = { echo = 2 }\n\n[providers.quiet]\nplugin = "echo"\nprefix = "> "\n'
    )
    return tmp_path


def test_router_status_lists_each_router_its_members_and_circuits(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["router", "status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "smart: strategy weighted, 0 sticky session(s)",
        "  echo (echo): weight 2, first event -",
        "    circuit closed (no run yet)",
        "  quiet (echo): weight 1, first event -",
        "    circuit closed (no run yet)",
    ]


def test_router_status_as_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["router", "status", "smart", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert status["name"] == "smart" and [m["name"] for m in status["members"]] == ["echo", "quiet"]


def test_an_unknown_router_is_named(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["router", "status", "smrt"]) == 2
    assert "no router named 'smrt' in the config (routers: smart)" in capsys.readouterr().err
