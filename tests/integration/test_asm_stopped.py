"""`asm run` stopped by a signal while a CLI provider runs, with the run recorded in
a SQLite file that this process reads back: SIGTERM and SIGHUP store the run and its
session ``cancelled``; no process of the CLI's group outlives asm, even after SIGKILL."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

from fake_cli_contract import AsmStoppedContract
from fake_cli_fixtures import fake_bin, install_fake, no_process_left

__all__ = ["fake_bin", "install_fake", "no_process_left"]


class _OnSqlite(AsmStoppedContract):
    def store_config(self, tmp_path: Path) -> str:
        return f'store = "sqlite"\n[stores.sqlite]\npath = "{tmp_path / "asm.db"}"\n'


class TestShell(_OnSqlite):
    provider_name = "shell"
    cli = "fake-agent"
    stream = "codex_exec.jsonl"

    def words(self, fake: Path) -> list[str]:
        return [str(fake)]


class TestCodex(_OnSqlite):
    provider_name = "codex"
    cli = "codex"
    stream = "codex_exec.jsonl"


class TestClaudeCode(_OnSqlite):
    provider_name = "claude-code"
    cli = "claude"
    stream = "claude_cli_stream_partial.jsonl"
