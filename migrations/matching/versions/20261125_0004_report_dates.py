"""report dates: when needs were posted and fulfilled, deliveries by date

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00

The new columns of the needs read model are filled by the needs feed. So that existing rows get them too, the
needs read model is replayed: its rows' seq and the feed's cursor go back to 0, and the sync applies every
change again, in order (an upsert by id, so nothing is duplicated; scoring reads the same values as before).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.common.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UtcDateTime = services.common.db.UtcDateTime


def upgrade() -> None:
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('posted_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('fulfilled_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_needs_posted_at'), ['posted_at'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_delivered_on'), ['delivered_on'], unique=False)
    # Replay the needs feed from the start, so that rows synced before this revision get their dates.
    op.execute("UPDATE needs SET seq = 0")
    op.execute("UPDATE feed_cursors SET last_seq = 0 WHERE feed = 'needs'")


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_delivered_on'))
    with op.batch_alter_table('needs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_needs_posted_at'))
        batch_op.drop_column('fulfilled_at')
        batch_op.drop_column('posted_at')
