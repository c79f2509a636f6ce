"""What every archive use case shares: the vault, the clock, the outbox emit and the inbox check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, ValidationError
from shared.envelope import Envelope
from shared.messaging import PermanentError
from shared.objectstore.port import ObjectStore
from shared.outbox import add_to_outbox
from sqlalchemy.engine import Connection, Engine

from archive import messages
from archive.adapters.db import inbox, outbox
from archive.domain.retention import RetentionPolicy

CONSUMER = "archive"
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Vault:
    """Where and how records are kept: the store, the object-locked bucket, the lock mode, the classes."""

    store: ObjectStore
    archive_bucket: str
    lock_mode: str
    retention: RetentionPolicy
    # The largest file archived; larger ones are refused as intake refuses them (its default is the same).
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def ensure_ready(self) -> None:
        """Makes (or checks) the object-lock bucket; StoreLacksCapability when the store cannot keep the
        archive's guarantees (no second version, verified bytes, enforced retention)."""
        self.store.ensure_bucket(self.archive_bucket, object_lock=True)

    def store_report(self) -> dict[str, Any]:
        """What the store does and how the archive's writes keep their guarantees on it (for /readyz);
        StoreUnavailable or StoreLacksCapability when it cannot serve the archive."""
        self.store.ping()
        return {
            "capabilities": self.store.capabilities().as_dict(),
            "write_plan": self.store.write_plan(object_lock=True).as_dict(),
        }


def emit(conn: Connection, event: str, payload: dict[str, Any]) -> None:
    add_to_outbox(conn, outbox, messages.new_event(event, payload), exchange=messages.EXCHANGE)


def already_handled(engine: Engine, message_id: str) -> bool:
    # A single read needs no transaction: autocommit sends the SELECT alone (no BEGIN before it, no
    # ROLLBACK when the connection goes back to the pool), one round trip instead of three per event.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        found = conn.execute(
            sa.select(inbox.c.message_id).where(
                inbox.c.message_id == message_id, inbox.c.consumer == CONSUMER
            )
        ).first()
    return found is not None


@contextmanager
def rejecting_malformed(envelope: Envelope) -> Iterator[None]:
    """A payload that fails its schema inside the block dead-letters the message (PermanentError)."""
    try:
        yield
    except ValidationError as exc:
        raise PermanentError(f"malformed {envelope.type} payload: {exc.messages}") from exc


def load_or_reject(schema: Schema, envelope: Envelope) -> dict[str, Any]:
    """The validated payload, or PermanentError (the consumer dead-letters the message)."""
    with rejecting_malformed(envelope):
        return messages.load_payload(schema, envelope)
