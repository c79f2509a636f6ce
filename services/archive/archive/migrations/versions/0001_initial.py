"""initial archive schema: records, directives, task events, audit chain, checkpoints, fixity runs, outbox, inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False, unique=True),
        sa.Column("exchange", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "id"])
    op.create_table(
        "inbox",
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "directives",
        sa.Column("directive_id", sa.String(64), primary_key=True),
        sa.Column("source_event_id", sa.String(64), nullable=False),
        sa.Column("arrival_number", sa.Integer, nullable=True),
        sa.Column("arrival_date", sa.String(10), nullable=True),
        sa.Column("received_at", sa.String(40), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "records",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("directive_id", sa.String(64), nullable=False, index=True),
        sa.Column("source_event_id", sa.String(64), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_ref", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(200), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("version_id", sa.String(200), nullable=True),
        sa.Column("retention_class", sa.String(32), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lock_mode", sa.String(16), nullable=False),
        sa.Column("legal_hold", sa.Boolean, nullable=False),
        sa.Column("legal_hold_reason", sa.Text, nullable=True),
        sa.Column("signature_status", sa.String(16), nullable=False, index=True),
        sa.Column("signature_report", sa.JSON, nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fixity_status", sa.String(16), nullable=False),
        sa.Column("fixity_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fixity_detail", sa.Text, nullable=True),
        sa.Column("issuer_name", sa.String(300), nullable=True),
        sa.Column("issuer_code", sa.String(64), nullable=True),
        sa.Column("number", sa.String(64), nullable=True),
        sa.Column("document_type", sa.String(100), nullable=True),
        sa.Column("issued_date", sa.Date, nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("search_text", sa.Text, nullable=False),
        sa.UniqueConstraint("source_event_id", "source_ref", name="uq_records_source"),
    )
    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("directive_id", sa.String(64), nullable=False, index=True),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("unit", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False, index=True),
        sa.Column("occurred_at", sa.String(40), nullable=False, index=True),
        sa.Column("directive_id", sa.String(64), nullable=True, index=True),
        sa.Column("record_id", sa.String(36), nullable=True, index=True),
        sa.Column("source_event_id", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("appends", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO audit_head (id, appends) VALUES (1, 0)")
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "fixity_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("failures", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "fixity_runs",
        "audit_checkpoints",
        "audit_head",
        "audit_entries",
        "task_events",
        "records",
        "directives",
        "inbox",
        "outbox",
    ):
        op.drop_table(table)
