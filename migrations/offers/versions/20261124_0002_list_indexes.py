"""keyset indexes for the newest-first lists

Organisations and offers list newest first by (created_at, id); without a matching index
PostgreSQL sorted the whole table for every page of the default (unfiltered) list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.create_index('ix_organisations_created_id', ['created_at', 'id'], unique=False)
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.create_index('ix_offers_created_id', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_index('ix_offers_created_id')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_index('ix_organisations_created_id')
