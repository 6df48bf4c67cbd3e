"""keyset indexes for the newest-first lists

Lists order by (created_at, id) and page with a cursor. (status, created_at) left PostgreSQL an
incremental sort for a status and a sort of the whole table without one; these two serve both
shapes straight from the index, from the cursor's position on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00.000000
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.drop_index('ix_needs_status_created')
        batch_op.create_index('ix_needs_status_created_id', ['status', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_needs_created_id', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.drop_index('ix_needs_created_id')
        batch_op.drop_index('ix_needs_status_created_id')
        batch_op.create_index('ix_needs_status_created', ['status', 'created_at'], unique=False)
