"""alembic environment of asm-sqlalchemy: configured by :mod:`asm_sqlalchemy._migrations`
(which passes an open connection in ``config.attributes``), never by an ini file."""

from __future__ import annotations

from alembic import context
from asm_sqlalchemy._schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
