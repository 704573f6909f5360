"""Where the embedded default database lives (private; imports no SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

__all__ = ["default_sqlite_path"]


def default_sqlite_path() -> Path:
    """The embedded default database: ``asm.db`` in the platformdirs user data dir."""
    return Path(platformdirs.user_data_dir("asm")) / "asm.db"
