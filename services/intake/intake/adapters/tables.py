"""SQLAlchemy tables of the intake database, with the shared outbox and inbox in the same metadata."""

from __future__ import annotations

import sqlalchemy as sa
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

directives = sa.Table(
    "directives",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("organisation", sa.String(64), nullable=False),
    sa.Column("arrival_year", sa.Integer, nullable=False),
    sa.Column("arrival_number", sa.Integer, nullable=False),
    sa.Column("arrival_date", sa.Date, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("issuer_name", sa.String(200), nullable=False),
    sa.Column("issuer_code", sa.String(35), nullable=True),
    # Accent-free lower-case copies make filters diacritics-insensitive with plain LIKE on both databases.
    sa.Column("issuer_folded", sa.String(200), nullable=False),
    sa.Column("number", sa.String(50), nullable=False),
    sa.Column("code_number", sa.String(11), nullable=False),
    sa.Column("code_number_value", sa.BigInteger, nullable=False),
    sa.Column("code_notation", sa.String(30), nullable=False),
    # Case-folded in Python: SQLite's lower() leaves Đ alone, so case-insensitive matching is done here.
    sa.Column("notation_key", sa.String(30), nullable=False),
    sa.Column("number_form", sa.String(10), nullable=False),
    sa.Column("document_type", sa.String(100), nullable=False),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("place", sa.String(200), nullable=True),
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("subject_folded", sa.String(500), nullable=False),
    sa.Column("content", sa.Text, nullable=True),
    sa.Column("signer", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("urgency", sa.String(20), nullable=False),
    sa.Column("confidentiality", sa.String(20), nullable=False),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("page_amount", sa.Integer, nullable=True),
    sa.Column("to_places", sa.JSON, nullable=False),
    sa.Column("external_id", sa.String(200), nullable=True),
    # The submission's metadata exactly as received (UTF-8 JSON text), for audit and re-processing.
    sa.Column("raw_metadata", sa.Text, nullable=False),
    # Same issuer + number + issued date is the same document; the unique index settles concurrent races.
    sa.Column("duplicate_key", sa.String(400), nullable=False, unique=True),
    sa.Column("idempotency_owner", sa.String(200), nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("submitted_by", sa.String(200), nullable=True),
    sa.Column("correlation_id", sa.String(128), nullable=True),
    sa.UniqueConstraint("organisation", "arrival_year", "arrival_number"),
    sa.UniqueConstraint("idempotency_owner", "idempotency_key"),
)
sa.Index("ix_directives_arrival_date", directives.c.arrival_date)
sa.Index("ix_directives_received_at", directives.c.received_at)
sa.Index("ix_directives_issuer_folded", directives.c.issuer_folded)
sa.Index("ix_directives_code_number_value", directives.c.code_number_value, directives.c.notation_key)
sa.Index("ix_directives_document_type", directives.c.document_type)
sa.Index("ix_directives_submitted_by", directives.c.submitted_by)

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("directive_id", sa.String(36), sa.ForeignKey("directives.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("bucket", sa.String(63), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.UniqueConstraint("directive_id", "position"),
)

# One row per receiving organisation and arrival year; its row lock serialises number allocation.
arrival_counters = sa.Table(
    "arrival_counters",
    metadata,
    sa.Column("organisation", sa.String(64), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("last_number", sa.Integer, nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
