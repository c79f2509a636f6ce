"""Helpers of the archive tests: staging files, building intake/routing events, a vault over a store."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from archive.adapters import repository
from archive.adapters.retention_config import load_policy
from archive.audit import write_checkpoint
from archive.common import Vault
from archive.settings import PACKAGED_RETENTION
from shared.envelope import Envelope
from shared.objectstore import ObjectStore
from sqlalchemy.engine import Engine

STAGING = "docroute-staging"
ARCHIVE = "docroute-archive"


def make_vault(store: ObjectStore, bucket: str = ARCHIVE, lock_mode: str = "GOVERNANCE") -> Vault:
    return Vault(
        store=store, archive_bucket=bucket, lock_mode=lock_mode, retention=load_policy(PACKAGED_RETENTION)
    )


@dataclass
class Staged:
    attachment: dict[str, Any]
    data: bytes


def stage(
    store: ObjectStore,
    data: bytes,
    filename: str,
    *,
    bucket: str = STAGING,
    content_type: str = "application/pdf",
) -> Staged:
    sha = hashlib.sha256(data).hexdigest()
    key = f"directives/{uuid.uuid4().hex}/{sha}"
    # A type a store would refuse as a header (CR/LF) is staged as octet-stream; the event still carries it.
    stored_type = content_type if content_type.isprintable() else "application/octet-stream"
    store.put(bucket, key, data, size=len(data), content_type=stored_type, sha256=sha)
    return Staged(
        attachment={
            "id": str(uuid.uuid4()),
            "filename": filename,
            "content_type": content_type,
            "size": len(data),
            "sha256": sha,
            "bucket": bucket,
            "key": key,
        },
        data=data,
    )


def directive_event(directive_id: str, attachments: list[dict[str, Any]], **meta: Any) -> Envelope:
    metadata = {
        "issuer": {"name": "Cục Viễn thông", "code": "000.00.00.G22"},
        "number": "1393/CVT-CL",
        "code_number": "1393",
        "code_notation": "CVT-CL",
        "document_type": "Công văn",
        "issued_date": "2021-04-08",
        "subject": "V/v phối hợp, hỗ trợ, thúc đẩy ứng dụng i-Speed đo kiểm chất lượng Internet Việt Nam",
        "urgency": "thuong",
        "confidentiality": "thuong",
    }
    metadata.update(meta)
    return Envelope.new(
        "intake.directive_registered",
        {
            "directive_id": directive_id,
            "arrival_number": 7,
            "arrival_date": "2021-04-12",
            "received_at": "2021-04-12T08:30:00+07:00",
            "metadata": metadata,
            "attachments": attachments,
        },
        producer="intake",
    )


def task_event(name: str, directive_id: str, **payload: Any) -> Envelope:
    body = {"directive_id": directive_id, "task_id": payload.pop("task_id", str(uuid.uuid4()))}
    body.update(payload)
    return Envelope.new(f"routing.{name}", body, producer="routing")


def rechain_with_edit(conn: Any, entries: list[Any], seq: int, actor: str = "service:intruder") -> None:
    """What a thorough intruder with database access does: edits entry `seq` and recomputes every hash after
    it, inside the caller's transaction, so the chain alone still verifies."""
    import sqlalchemy as sa
    from archive.adapters.db import audit_entries
    from archive.domain.audit import GENESIS_HASH, AuditEvent, next_entry

    prev_seq, prev_hash = 0, GENESIS_HASH
    for entry in entries:
        new_actor = actor if entry.seq == seq else entry.actor
        event = AuditEvent(
            action=entry.action,
            actor=new_actor,
            occurred_at=entry.occurred_at,
            directive_id=entry.directive_id,
            record_id=entry.record_id,
            source_event_id=entry.source_event_id,
            details=entry.details,
        )
        new = next_entry(event, prev_seq=prev_seq, prev_hash=prev_hash)
        conn.execute(
            sa.update(audit_entries)
            .where(audit_entries.c.seq == entry.seq)
            .values(actor=new_actor, prev_hash=new.prev_hash, hash=new.hash)
        )
        prev_seq, prev_hash = new.seq, new.hash


class KilledBeforeItsRow(Exception):
    """The archive worker dies between storing a checkpoint object and committing its row."""


def write_checkpoint_killed_before_its_row(
    engine: Engine, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Runs the worker's checkpoint write up to its row's insert, which never happens; returns that row."""
    row: dict[str, Any] = {}

    def killed(conn: Any, **values: Any) -> None:
        row.update(values)
        raise KilledBeforeItsRow

    with monkeypatch.context() as patched:
        patched.setattr(repository, "add_checkpoint", killed)
        with pytest.raises(KilledBeforeItsRow):
            write_checkpoint(engine=engine, vault=vault)
    return row
