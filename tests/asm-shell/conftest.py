"""Fixtures of the asm-shell tests: fake agent CLIs to run as commands (``install_fake``),
and a session-wide check that no process outlives the tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

from fake_cli_fixtures import fake_bin, install_fake, no_process_left

__all__ = ["fake_bin", "install_fake", "no_process_left"]
