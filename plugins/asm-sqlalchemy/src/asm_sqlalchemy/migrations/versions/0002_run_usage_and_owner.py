"""Runs get usage columns (for aggregates) and their owner process (for recovery).

Existing runs are backfilled from their JSON.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def upgrade() -> None:
    with op.batch_alter_table("asm_runs") as batch:
        batch.add_column(sa.Column("model", sa.String(200), nullable=True))
        for name in _TOKENS:
            batch.add_column(sa.Column(name, sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
        batch.add_column(sa.Column("owner_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))

    from asm_sqlalchemy._rows import run_usage_columns

    bind = op.get_bind()
    runs = sa.table("asm_runs", sa.column("id", sa.String), sa.column("body", sa.Text))
    rows = bind.execute(sa.select(runs.c.id, runs.c.body)).all()
    target = sa.table(
        "asm_runs",
        sa.column("id", sa.String),
        sa.column("model", sa.String),
        sa.column("cost_usd", sa.Float),
        *(sa.column(name, sa.BigInteger) for name in _TOKENS),
    )
    for run_id, body in rows:
        values = run_usage_columns(body)
        if values is not None:
            bind.execute(sa.update(target).where(target.c.id == run_id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("asm_runs") as batch:
        for name in ("owner_pid", "owner_host", "cost_usd", *reversed(_TOKENS), "model"):
            batch.drop_column(name)
