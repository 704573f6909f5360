"""Sessions, runs, the event log and the per-session seq heads.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asm_sessions",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("parent_session_id", sa.String(100), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asm_sessions"),
    )
    for column in ("agent_id", "status", "provider", "created_at", "updated_at"):
        op.create_index(f"ix_asm_sessions_{column}", "asm_sessions", [column])
    op.create_table(
        "asm_runs",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asm_runs"),
    )
    op.create_index("ix_asm_runs_session_id", "asm_runs", ["session_id"])
    op.create_index("ix_asm_runs_status", "asm_runs", ["status"])
    op.create_table(
        "asm_events",
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(100), nullable=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_asm_events"),
        sa.UniqueConstraint("id", name="uq_asm_events_id"),
    )
    op.create_index("ix_asm_events_type_at", "asm_events", ["type", "at"])
    op.create_table(
        "asm_event_heads",
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_asm_event_heads"),
    )


def downgrade() -> None:
    op.drop_table("asm_event_heads")
    op.drop_table("asm_events")
    op.drop_table("asm_runs")
    op.drop_table("asm_sessions")
