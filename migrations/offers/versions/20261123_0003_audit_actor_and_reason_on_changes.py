"""audit actor and reason on changes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:59:02.867375
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.String(length=500), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_column('reason')
        batch_op.drop_column('actor')

