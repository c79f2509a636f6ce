"""Initial intake schema: directives, attachments, arrival counters, outbox and inbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 19:03:48.404721
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('arrival_counters',
    sa.Column('organisation', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('organisation', 'year', name=op.f('pk_arrival_counters'))
    )
    op.create_table('directives',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organisation', sa.String(length=64), nullable=False),
    sa.Column('arrival_year', sa.Integer(), nullable=False),
    sa.Column('arrival_number', sa.Integer(), nullable=False),
    sa.Column('arrival_date', sa.Date(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('issuer_name', sa.String(length=200), nullable=False),
    sa.Column('issuer_code', sa.String(length=35), nullable=True),
    sa.Column('issuer_folded', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=50), nullable=False),
    sa.Column('code_number', sa.String(length=11), nullable=False),
    sa.Column('code_number_value', sa.BigInteger(), nullable=False),
    sa.Column('code_notation', sa.String(length=30), nullable=False),
    sa.Column('notation_key', sa.String(length=30), nullable=False),
    sa.Column('number_form', sa.String(length=10), nullable=False),
    sa.Column('document_type', sa.String(length=100), nullable=False),
    sa.Column('issued_date', sa.Date(), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=True),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('subject_folded', sa.String(length=500), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('signer', sa.JSON(), nullable=True),
    sa.Column('urgency', sa.String(length=20), nullable=False),
    sa.Column('confidentiality', sa.String(length=20), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('page_amount', sa.Integer(), nullable=True),
    sa.Column('to_places', sa.JSON(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('raw_metadata', sa.Text(), nullable=False),
    sa.Column('duplicate_key', sa.String(length=400), nullable=False),
    sa.Column('idempotency_owner', sa.String(length=200), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=True),
    sa.Column('correlation_id', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directives')),
    sa.UniqueConstraint('duplicate_key', name=op.f('uq_directives_duplicate_key')),
    sa.UniqueConstraint('idempotency_owner', 'idempotency_key', name=op.f('uq_directives_idempotency_owner_idempotency_key')),
    sa.UniqueConstraint('organisation', 'arrival_year', 'arrival_number', name=op.f('uq_directives_organisation_arrival_year_arrival_number'))
    )
    with op.batch_alter_table('directives', schema=None) as batch_op:
        batch_op.create_index('ix_directives_arrival_date', ['arrival_date'], unique=False)
        batch_op.create_index('ix_directives_code_number_value', ['code_number_value', 'notation_key'], unique=False)
        batch_op.create_index('ix_directives_document_type', ['document_type'], unique=False)
        batch_op.create_index('ix_directives_issuer_folded', ['issuer_folded'], unique=False)
        batch_op.create_index('ix_directives_received_at', ['received_at'], unique=False)
        batch_op.create_index('ix_directives_submitted_by', ['submitted_by'], unique=False)

    op.create_table('inbox',
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id', 'consumer', name=op.f('pk_inbox'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('exchange', sa.String(length=255), nullable=False),
    sa.Column('routing_key', sa.String(length=255), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('message_id', name=op.f('uq_outbox_message_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_unpublished', ['published_at', 'id'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('directive_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bucket', sa.String(length=63), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.ForeignKeyConstraint(['directive_id'], ['directives.id'], name=op.f('fk_attachments_directive_id_directives')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('directive_id', 'position', name=op.f('uq_attachments_directive_id_position'))
    )


def downgrade() -> None:
    op.drop_table('attachments')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_unpublished')

    op.drop_table('outbox')
    op.drop_table('inbox')
    with op.batch_alter_table('directives', schema=None) as batch_op:
        batch_op.drop_index('ix_directives_submitted_by')
        batch_op.drop_index('ix_directives_received_at')
        batch_op.drop_index('ix_directives_issuer_folded')
        batch_op.drop_index('ix_directives_document_type')
        batch_op.drop_index('ix_directives_code_number_value')
        batch_op.drop_index('ix_directives_arrival_date')

    op.drop_table('directives')
    op.drop_table('arrival_counters')
