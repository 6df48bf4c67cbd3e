"""approval saga, deliveries, receipts, follow-ups, audit trail, notifications, webhooks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.common.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UtcDateTime = services.common.db.UtcDateTime
Quantity = services.common.db.Quantity

MATCH_COLUMNS = (
    sa.Column('status_reason_en', sa.Text(), nullable=True),
    # Existing rows came from match runs; server defaults fill them, the models write every value themselves.
    sa.Column('origin', sa.String(length=12), nullable=False, server_default='run'),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('saga_step', sa.String(length=20), nullable=True),
    sa.Column('saga_owner', sa.String(length=32), nullable=True),
    sa.Column('saga_lease_until', UtcDateTime(timezone=True), nullable=True),
    sa.Column('saga_attempts', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('saga_error', sa.Text(), nullable=True),
    sa.Column('delivered', Quantity(precision=18, scale=2), nullable=False, server_default='0'),
    sa.Column('delivery_synced', Quantity(precision=18, scale=2), nullable=False, server_default='0'),
    sa.Column('received', Quantity(precision=18, scale=2), nullable=True),
    sa.Column('satisfaction', sa.Integer(), nullable=True),
    sa.Column('receipt_comment', sa.Text(), nullable=True),
    sa.Column('received_by', sa.String(length=100), nullable=True),
    sa.Column('received_at', UtcDateTime(timezone=True), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table('matches', schema=None) as batch_op:
        for column in MATCH_COLUMNS:
            batch_op.add_column(column.copy())

    op.create_table('match_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('match_id', sa.Uuid(), nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=False),
    sa.Column('organisation_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('from_status', sa.String(length=12), nullable=True),
    sa.Column('to_status', sa.String(length=12), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('actor_role', sa.String(length=20), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('reason_zh', sa.Text(), nullable=True),
    sa.Column('reason_en', sa.Text(), nullable=True),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_events'))
    )
    with op.batch_alter_table('match_events', schema=None) as batch_op:
        batch_op.create_index('ix_match_events_match_created', ['match_id', 'created_at'], unique=False)
        batch_op.create_index('ix_match_events_village_created', ['village_code', 'created_at'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('match_id', sa.Uuid(), nullable=False),
    sa.Column('quantity', Quantity(precision=18, scale=2), nullable=False),
    sa.Column('delivered_total', Quantity(precision=18, scale=2), nullable=False),
    sa.Column('delivered_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_match_id'), ['match_id'], unique=False)

    op.create_table('follow_ups',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('match_id', sa.Uuid(), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups'))
    )
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_follow_ups_match_id'), ['match_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('audience_kind', sa.String(length=12), nullable=False),
    sa.Column('audience', sa.String(length=40), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('match_id', sa.Uuid(), nullable=True),
    sa.Column('title_zh', sa.Text(), nullable=False),
    sa.Column('title_en', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_audience_created', ['audience_kind', 'audience', 'created_at'], unique=False)

    op.create_table('notification_reads',
    sa.Column('notification_id', sa.Uuid(), nullable=False),
    sa.Column('reader', sa.String(length=100), nullable=False),
    sa.Column('read_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('notification_id', 'reader', name=op.f('pk_notification_reads'))
    )

    op.create_table('webhooks',
    sa.Column('organisation_id', sa.Uuid(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('organisation_id', name=op.f('pk_webhooks'))
    )

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organisation_id', sa.Uuid(), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_status_next', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_status_next')
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_organisation_id'))
    op.drop_table('webhook_deliveries')
    op.drop_table('webhooks')
    op.drop_table('notification_reads')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_audience_created')
    op.drop_table('notifications')
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_follow_ups_match_id'))
    op.drop_table('follow_ups')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_match_id'))
    op.drop_table('deliveries')
    with op.batch_alter_table('match_events', schema=None) as batch_op:
        batch_op.drop_index('ix_match_events_village_created')
        batch_op.drop_index('ix_match_events_match_created')
    op.drop_table('match_events')
    with op.batch_alter_table('matches', schema=None) as batch_op:
        for column in reversed(MATCH_COLUMNS):
            batch_op.drop_column(column.name)
