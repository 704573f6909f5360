"""The hook implementations (private): they register, and import nothing heavier than argparse.

Every ``asm`` command loads this module; the stores' factories (:mod:`asm_sqlalchemy._factories`,
with attrs and SQLAlchemy) and the commands' handlers are imported when they are used.
"""

from __future__ import annotations

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy

__all__ = ["asm_register_commands", "asm_register_stores"]


@hookimpl
def asm_register_stores(register: Register) -> None:
    """``sqlite`` (the embedded default) and ``sqlalchemy`` (any URL)."""
    register("sqlite", lazy("asm_sqlalchemy._factories:create_sqlite_store"))
    register("sqlalchemy", lazy("asm_sqlalchemy._factories:create_sqlalchemy_store"))


@hookimpl
def asm_register_commands(register: Register) -> None:
    """``asm sessions``, ``asm events`` and ``asm db``."""
    from asm_sqlalchemy import _cli

    register("sessions", _cli.add_sessions)
    register("events", _cli.add_events)
    register("db", _cli.add_db)
