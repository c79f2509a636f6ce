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
    # The lifecycle: 1 at registration, one more per update (directive_revisions keeps each); a replaced
    # directive names the one that replaced it and the replacement names it back.
    sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("replaces", sa.String(36), nullable=True),
    sa.Column("replaced_by", sa.String(36), nullable=True),
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

# Each update of a directive (revision 2, 3, ...): what changed from what to what, who asked and why; the
# directive's row holds the latest values, so every earlier revision is its row minus the later changes.
directive_revisions = sa.Table(
    "directive_revisions",
    metadata,
    sa.Column("directive_id", sa.String(36), sa.ForeignKey("directives.id"), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    # {field: {"from": old, "to": new}}; added files under "attachments": {"added": [attachment ids]}.
    sa.Column("changes", sa.JSON, nullable=False),
    # The update packet (edXML BussinessDocType 2), kept as one of the directive's attachments.
    sa.Column("packet_id", sa.String(36), nullable=True),
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

# -- closed loop: outgoing status and webhooks ---------------------------------------------------------

# One row; its lock, held from taking a cursor to the commit, makes status cursors gap-free and visible in
# cursor order (a reader that saw cursor n can never later find a smaller one committed).
status_cursor = sa.Table(
    "status_cursor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_cursor", sa.BigInteger, nullable=False),
)

# What intake sends back to a directive's sender: each row written in the transaction that caused it.
status_updates = sa.Table(
    "status_updates",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=False, unique=True),
    # None for a refused edXML packet (02 with no directive): addressed by sender_code and its DocumentId.
    sa.Column("directive_id", sa.String(36), sa.ForeignKey("directives.id"), nullable=True),
    sa.Column("status_code", sa.String(2), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("staff", sa.JSON, nullable=True),
    # The original as ResponseFor names it, kept with the status so a packet reads the same every time.
    sa.Column("response_for", sa.JSON, nullable=False),
    sa.Column("sender_code", sa.String(35), nullable=True),
    sa.Column("submitted_by", sa.String(200), nullable=True),
    # Each status once: `directive:code` for 01–06, `directive:code:kind[:occasion]` for 15/16,
    # `refused:sender:DocumentId:reason-digest` for a refused packet (see intake.status).
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
)
sa.Index("ix_status_updates_directive_id", status_updates.c.directive_id, status_updates.c.cursor)
sa.Index("ix_status_updates_submitted_by", status_updates.c.submitted_by, status_updates.c.cursor)

# Routing's tasks as intake learnt them from routing's events: enough to derive 04, 05 and 06.
directive_tasks = sa.Table(
    "directive_tasks",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("directive_id", sa.String(36), nullable=False, index=True),
    sa.Column("unit", sa.String(64), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    # Ever in progress or done: 05 is due even if the task's last known status is something else.
    sa.Column("started", sa.Boolean, nullable=False),
    # When routing made the change last applied: an older event arriving late does not undo a newer one.
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("senders", sa.JSON, nullable=True),
    sa.Column("directives", sa.JSON, nullable=True),
    sa.Column("format", sa.String(10), nullable=False),
    # The signing secret, encrypted at rest (intake.adapters.secret_box): `fernet:` + token.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    # Statuses up to this cursor have their deliveries made (or did not match the filters).
    sa.Column("fanned_cursor", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
)

# One row per status and subscription; its id is the webhook-id, the same on every retry.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscription_id", sa.String(36), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("status_update_id", sa.String(36), sa.ForeignKey("status_updates.id"), nullable=False),
    # Deliveries of one directive go out in order; None (a refused packet's 02) orders after nothing.
    sa.Column("directive_id", sa.String(36), nullable=True),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    # pending, delivered, dead (retries exhausted), cancelled (subscription deleted or disabled)
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
    # A worker sending it holds it until then; after a kill -9 another takes it once this passes.
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("subscription_id", "status_update_id"),
)
sa.Index(
    "ix_webhook_deliveries_pending",
    webhook_deliveries.c.state,
    webhook_deliveries.c.subscription_id,
    webhook_deliveries.c.directive_id,
    webhook_deliveries.c.cursor,
)
