"""The stores' options and factories (private; registered lazily by :mod:`asm_sqlalchemy._plugin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from asm.plugins import parse_options
from asm_sqlalchemy._paths import default_sqlite_path

if TYPE_CHECKING:
    from asm_sqlalchemy._store import SqlAlchemyStore

__all__ = ["SqliteOptions", "SqlAlchemyOptions", "create_sqlalchemy_store", "create_sqlite_store"]


@attrs.frozen
class _Tuning:
    batch_max_events: int = 5000
    batch_delay: float = 0.0
    poll_interval: float = 0.05
    max_threads: int = 8


@attrs.frozen
class SqliteOptions(_Tuning):
    """``[stores.sqlite]``: ``path`` of the database file (default ``asm.db``
    in the platformdirs user data dir), ``synchronous`` (``NORMAL``: a
    committed event survives the process being killed; ``FULL``: also a
    power cut), and the group-commit / polling tuning of :class:`SqlAlchemyStore`."""

    path: str | None = None
    synchronous: str = "NORMAL"


@attrs.frozen
class SqlAlchemyOptions(_Tuning):
    """``[stores.sqlalchemy]``: ``url`` (``postgresql+psycopg://user:pw@host/db``
    or ``sqlite:///path``) and the same tuning options."""

    url: str = ""


def create_sqlite_store(config: dict[str, Any]) -> SqlAlchemyStore:
    """The ``sqlite`` store from its config table."""
    from asm_sqlalchemy._store import SqlAlchemyStore  # SQLAlchemy is imported when a store is built

    options = parse_options(SqliteOptions, config, "sqlite store")
    path = options.path or str(default_sqlite_path())
    return SqlAlchemyStore(
        f"sqlite:///{path}",
        batch_max_events=options.batch_max_events,
        batch_delay=options.batch_delay,
        poll_interval=options.poll_interval,
        max_threads=options.max_threads,
        synchronous=options.synchronous,
    )


def create_sqlalchemy_store(config: dict[str, Any]) -> SqlAlchemyStore:
    """The ``sqlalchemy`` store from its config table (``url`` is required)."""
    from asm import AsmError
    from asm_sqlalchemy._store import SqlAlchemyStore

    options = parse_options(SqlAlchemyOptions, config, "sqlalchemy store")
    if not options.url:
        raise AsmError(
            "invalid_config",
            "the sqlalchemy store needs a url: set [stores.sqlalchemy] url = "
            '"postgresql+psycopg://user:password@host:5432/dbname" (or ASM_STORES__SQLALCHEMY__URL)',
        )
    return SqlAlchemyStore(
        options.url,
        batch_max_events=options.batch_max_events,
        batch_delay=options.batch_delay,
        poll_interval=options.poll_interval,
        max_threads=options.max_threads,
    )
