"""The store a distributed runtime needs: PostgreSQL through asm-sqlalchemy (private)."""

from __future__ import annotations

from asm import AsmError
from asm.runtime import Runtime
from asm_celery._ledger import Ledger

__all__ = ["ledger_for"]


def ledger_for(runtime: Runtime, *, connections: int = 2, name: str = "asm-celery") -> Ledger:
    """The dispatch ledger in ``runtime``'s store database; ``invalid_config`` unless
    that store is asm-sqlalchemy's on PostgreSQL (workers on several machines share
    one database: SQLite and the memory store cannot be shared). ``connections``
    bounds its pool; ``name`` is its connections' ``application_name``."""
    from asm_sqlalchemy import SqlAlchemyStore

    store = runtime.store
    if not isinstance(store, SqlAlchemyStore):
        raise AsmError(
            "invalid_config",
            f"the celery server backend needs a PostgreSQL store, not the {type(store).__name__} "
            f"(store = {runtime.config.store or 'the default'!r}): workers on several machines share one "
            'database; set store = "sqlalchemy" and [stores.sqlalchemy] url = '
            '"postgresql+psycopg://user:pw@host:5432/db"',
            details={"key": "store"},
        )
    return Ledger(store.url, connections=connections, name=name)
