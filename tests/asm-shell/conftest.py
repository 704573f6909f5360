"""Fixtures of the asm-shell tests: a session-wide check that no process outlives the tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

from fake_cli_fixtures import no_process_left

__all__ = ["no_process_left"]
