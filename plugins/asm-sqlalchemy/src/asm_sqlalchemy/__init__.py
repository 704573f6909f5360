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

from typing import TYPE_CHECKING

from asm.plugins import lazy_attributes
from asm_sqlalchemy._plugin import asm_register_commands as asm_register_commands
from asm_sqlalchemy._plugin import asm_register_stores as asm_register_stores

if TYPE_CHECKING:
    from asm_sqlalchemy._admin import current as current
    from asm_sqlalchemy._admin import upgrade as upgrade
    from asm_sqlalchemy._engine import ping_idle_connections as ping_idle_connections
    from asm_sqlalchemy._factories import SqlAlchemyOptions as SqlAlchemyOptions
    from asm_sqlalchemy._factories import SqliteOptions as SqliteOptions
    from asm_sqlalchemy._factories import create_sqlalchemy_store as create_sqlalchemy_store
    from asm_sqlalchemy._factories import create_sqlite_store as create_sqlite_store
    from asm_sqlalchemy._migrations import head_revision as head_revision
    from asm_sqlalchemy._paths import default_sqlite_path as default_sqlite_path
    from asm_sqlalchemy._store import SqlAlchemyStore as SqlAlchemyStore
    from asm_sqlalchemy._store import StoreStatistics as StoreStatistics

#: What attrs, SQLAlchemy or alembic are imported for, on first use: loading the plugin for
#: any ``asm`` command imports none of them (the store's factory imports them when it builds one).
_LAZY = {
    "default_sqlite_path": "_paths",
    "SqlAlchemyOptions": "_factories",
    "SqliteOptions": "_factories",
    "create_sqlalchemy_store": "_factories",
    "create_sqlite_store": "_factories",
    "current": "_admin",
    "upgrade": "_admin",
    "head_revision": "_migrations",
    "ping_idle_connections": "_engine",
    "SqlAlchemyStore": "_store",
    "StoreStatistics": "_store",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
    "ping_idle_connections",
    "upgrade",
]
