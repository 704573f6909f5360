"""The curated public surface of asm_sqlalchemy (STYLE.md rule 9)."""

from __future__ import annotations

import asm_sqlalchemy


def test_exported_names() -> None:
    assert sorted(asm_sqlalchemy.__all__) == [
        "SqlAlchemyOptions",
        "SqlAlchemyStore",
        "SqliteOptions",
        "StoreStatistics",
        "asm_register_commands",
        "asm_register_stores",
        "create_sqlalchemy_store",
        "create_sqlite_store",
        "current",
        "default_sqlite_path",
        "head_revision",
        "ping_idle_connections",
        "upgrade",
    ]
    for name in asm_sqlalchemy.__all__:
        value = getattr(asm_sqlalchemy, name)
        assert value.__doc__, f"{name} has no docstring"
