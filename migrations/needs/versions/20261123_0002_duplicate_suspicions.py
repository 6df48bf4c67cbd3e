"""duplicate suspicions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:53:24.690443
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.common.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('duplicate_suspicions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('need_id', sa.Uuid(), nullable=False),
    sa.Column('other_need_id', sa.Uuid(), nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('resolved_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['need_id'], ['needs.id'], name=op.f('fk_duplicate_suspicions_need_id_needs')),
    sa.ForeignKeyConstraint(['other_need_id'], ['needs.id'], name=op.f('fk_duplicate_suspicions_other_need_id_needs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duplicate_suspicions')),
    sa.UniqueConstraint('need_id', 'other_need_id', name=op.f('uq_duplicate_suspicions_need_id_other_need_id'))
    )
    with op.batch_alter_table('duplicate_suspicions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_suspicions_need_id'), ['need_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_duplicate_suspicions_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_duplicate_suspicions_village_code'), ['village_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('duplicate_suspicions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_duplicate_suspicions_village_code'))
        batch_op.drop_index(batch_op.f('ix_duplicate_suspicions_status'))
        batch_op.drop_index(batch_op.f('ix_duplicate_suspicions_need_id'))

    op.drop_table('duplicate_suspicions')
