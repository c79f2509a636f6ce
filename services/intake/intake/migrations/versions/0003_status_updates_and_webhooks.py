"""Closed loop: outgoing statuses (gap-free cursor), routing's tasks as intake knows them, webhook
subscriptions and their deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 00:12:39.664418
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('directive_tasks',
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('directive_id', sa.String(length=36), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_directive_tasks'))
    )
    op.create_index(op.f('ix_directive_tasks_directive_id'), 'directive_tasks', ['directive_id'], unique=False)
    op.create_table('status_cursor',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_cursor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_cursor'))
    )
    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('senders', sa.JSON(), nullable=True),
    sa.Column('directives', sa.JSON(), nullable=True),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('fanned_cursor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_table('status_updates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('directive_id', sa.String(length=36), nullable=False),
    sa.Column('status_code', sa.String(length=2), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('staff', sa.JSON(), nullable=True),
    sa.Column('response_for', sa.JSON(), nullable=False),
    sa.Column('sender_code', sa.String(length=35), nullable=True),
    sa.Column('submitted_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['directive_id'], ['directives.id'], name=op.f('fk_status_updates_directive_id_directives')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_updates')),
    sa.UniqueConstraint('cursor', name=op.f('uq_status_updates_cursor')),
    sa.UniqueConstraint('directive_id', 'status_code', name=op.f('uq_status_updates_directive_id_status_code'))
    )
    op.create_index('ix_status_updates_directive_id', 'status_updates', ['directive_id', 'cursor'], unique=False)
    op.create_index('ix_status_updates_submitted_by', 'status_updates', ['submitted_by', 'cursor'], unique=False)
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('subscription_id', sa.String(length=36), nullable=False),
    sa.Column('status_update_id', sa.String(length=36), nullable=False),
    sa.Column('directive_id', sa.String(length=36), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['status_update_id'], ['status_updates.id'], name=op.f('fk_webhook_deliveries_status_update_id_status_updates')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('subscription_id', 'status_update_id', name=op.f('uq_webhook_deliveries_subscription_id_status_update_id'))
    )
    op.create_index('ix_webhook_deliveries_pending', 'webhook_deliveries', ['state', 'subscription_id', 'directive_id', 'cursor'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_pending', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_status_updates_submitted_by', table_name='status_updates')
    op.drop_index('ix_status_updates_directive_id', table_name='status_updates')
    op.drop_table('status_updates')
    op.drop_table('webhook_subscriptions')
    op.drop_table('status_cursor')
    op.drop_index(op.f('ix_directive_tasks_directive_id'), table_name='directive_tasks')
    op.drop_table('directive_tasks')
