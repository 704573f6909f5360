"""Event bodies hold only what the columns do not: the payload (and the time, when the naive
UTC ``at`` column cannot give it back exactly).

A body written before held the whole event, repeating id, session, run, seq, type, time,
provider and schema version beside the columns that hold them: two to ten times the bytes to
write, keep and read back. This revision changes no table. What it marks is that the rows'
writers now write lean bodies (``{"data": ...}``), which an asm older than it cannot read:
it refuses a database at 0004 ("a newer version wrote it").

The existing rows are rewritten by ``asm db upgrade`` right after this revision is stamped
(:func:`asm_sqlalchemy._migrations.rewrite_event_bodies`): in primary-key order, a batch per
transaction, outside the migration's own transaction, so appends and reads go on meanwhile
(readers take both forms). An upgrade stopped half-way is finished by the next one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change in the tables (the rows are rewritten after the stamp, see above)."""


def downgrade() -> None:
    """Lean bodies stay lean: an asm at 0003 would not read them, so there is no way back
    short of restoring the backup taken before the upgrade."""
    raise NotImplementedError("0004 cannot be downgraded: restore the backup taken before `asm db upgrade`")
