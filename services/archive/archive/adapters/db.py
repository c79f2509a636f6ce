"""The archive database: table definitions (incl. shared outbox/inbox) and migrate(engine)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from shared.db import run_migrations
from shared.inbox import inbox_table
from shared.outbox import outbox_table
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

metadata = sa.MetaData()

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

directives = sa.Table(
    "directives",
    metadata,
    sa.Column("directive_id", sa.String(64), primary_key=True),
    sa.Column("source_event_id", sa.String(64), nullable=False),
    sa.Column("arrival_number", sa.Integer, nullable=True),
    sa.Column("arrival_date", sa.String(10), nullable=True),
    sa.Column("received_at", sa.String(40), nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
)

records = sa.Table(
    "records",
    metadata,
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
    # Copies of the directive's metadata so auditors can search records without a join.
    sa.Column("issuer_name", sa.String(300), nullable=True),
    sa.Column("issuer_code", sa.String(64), nullable=True),
    sa.Column("number", sa.String(64), nullable=True),
    sa.Column("document_type", sa.String(100), nullable=True),
    sa.Column("issued_date", sa.Date, nullable=True),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("search_text", sa.Text, nullable=False),
    # Active content found in a PDF at archiving (javascript, embedded_files, launch_action).
    sa.Column("content_flags", sa.JSON, nullable=False, server_default="[]"),
    # A redelivered (or replayed) event never makes a second record of the same document.
    sa.UniqueConstraint("source_event_id", "source_ref", name="uq_records_source"),
)

task_events = sa.Table(
    "task_events",
    metadata,
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

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False, index=True),
    # The exact UTC text that was hashed; it also sorts chronologically.
    sa.Column("occurred_at", sa.String(40), nullable=False, index=True),
    sa.Column("directive_id", sa.String(64), nullable=True, index=True),
    sa.Column("record_id", sa.String(36), nullable=True, index=True),
    sa.Column("source_event_id", sa.String(64), nullable=True),
    # Text, not JSON: the stored bytes must come back exactly as they were hashed.
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row; appenders update it first, which serialises them (row lock on PostgreSQL, write lock on SQLite).
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("appends", sa.BigInteger, nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(300), nullable=False, unique=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

fixity_runs = sa.Table(
    "fixity_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("checked", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("failures", sa.JSON, nullable=False),
)


def migrate(engine: Engine) -> None:
    """Brings the archive database to the latest schema (alembic upgrade head)."""
    run_migrations(engine, MIGRATIONS)
