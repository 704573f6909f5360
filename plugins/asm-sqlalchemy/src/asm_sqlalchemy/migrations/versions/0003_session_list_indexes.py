"""Sessions get composite indexes matching the filtered, newest-first list.

``search_sessions`` (``GET /v1/sessions``, ``asm sessions list``) filters on
status, agent and provider and orders by ``created_at DESC, id DESC``. With one
index per column the database either sorts every row of the agent, or walks
the whole ``created_at`` index checking each row: 75 ms for a page of 50 on
100,000 SQLite sessions. An index per filter, each ending in the sort order,
reads the page's rows and stops. They replace the single-column indexes on
``agent_id``, ``status`` and ``provider``, which are prefixes of them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: name -> columns; each ends in the list's order (created_at, id).
INDEXES = {
    "ix_asm_sessions_status_agent_created": ["status", "agent_id", "created_at", "id"],
    "ix_asm_sessions_agent_created": ["agent_id", "created_at", "id"],
    "ix_asm_sessions_status_created": ["status", "created_at", "id"],
    "ix_asm_sessions_provider_created": ["provider", "created_at", "id"],
}
_REPLACED = ("agent_id", "status", "provider")


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "asm_sessions", columns)
    for column in _REPLACED:
        op.drop_index(f"ix_asm_sessions_{column}", table_name="asm_sessions")


def downgrade() -> None:
    for column in _REPLACED:
        op.create_index(f"ix_asm_sessions_{column}", "asm_sessions", [column])
    for name in INDEXES:
        op.drop_index(name, table_name="asm_sessions")
