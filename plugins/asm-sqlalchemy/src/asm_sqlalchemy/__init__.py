"""asm-sqlalchemy: durable sessions, runs and events on SQLite and PostgreSQL.

Installing it makes SQLite the embedded default store of ``asm`` (a file in
the platformdirs user data dir). Stores, by the name used in ``asm.toml``:

``sqlite``
    ``[stores.sqlite] path = "asm.db"`` (default: ``asm.db`` in the user data dir).
``sqlalchemy``
    ``[stores.sqlalchemy] url = "postgresql+psycopg://user:pw@host:5432/db"``.

Both are :class:`SqlAlchemyStore`: a SessionStore, QueryAPI and Maintenance.
Commands: ``asm sessions list|show``, ``asm events SESSION [--follow]``,
``asm db upgrade|current|recover``.

>>> async def main():
...     async with SqlAlchemyStore("sqlite:///asm.db") as store:
...         print(await store.list_sessions(limit=5))
"""

from asm_sqlalchemy._admin import current as current
from asm_sqlalchemy._admin import upgrade as upgrade
from asm_sqlalchemy._engine import default_sqlite_path as default_sqlite_path
from asm_sqlalchemy._migrations import head_revision as head_revision
from asm_sqlalchemy._plugin import SqlAlchemyOptions as SqlAlchemyOptions
from asm_sqlalchemy._plugin import SqliteOptions as SqliteOptions
from asm_sqlalchemy._plugin import asm_register_commands as asm_register_commands
from asm_sqlalchemy._plugin import asm_register_stores as asm_register_stores
from asm_sqlalchemy._plugin import create_sqlalchemy_store as create_sqlalchemy_store
from asm_sqlalchemy._plugin import create_sqlite_store as create_sqlite_store
from asm_sqlalchemy._store import SqlAlchemyStore as SqlAlchemyStore
from asm_sqlalchemy._store import StoreStatistics as StoreStatistics

__all__ = [
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
    "upgrade",
]
