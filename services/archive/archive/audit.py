"""The audit chain's verification and its checkpoints in the object-locked bucket."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from shared.objectstore.port import (
    ObjectNotFound,
    Retention,
    RetentionMode,
)
from sqlalchemy.engine import Engine

from archive import messages
from archive.adapters import audit_log, repository
from archive.common import Clock, Vault, emit, utcnow
from archive.domain.audit import ChainVerification, Checkpoint, check_against_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoints/"


@dataclass(frozen=True)
class AuditVerification:
    chain: ChainVerification
    checkpoint: Checkpoint | None = None
    checkpoint_key: str | None = None
    checkpoint_problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.checkpoint_problem is None


def _checkpoint_key(moment: datetime) -> str:
    return f"{CHECKPOINT_PREFIX}{moment.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}.json"


def latest_checkpoint(engine: Engine, vault: Vault) -> tuple[str, Checkpoint] | None:
    """The newest checkpoint object the database points at, read back from the object-locked bucket."""
    with engine.connect() as conn:
        keys = repository.checkpoint_keys(conn)
    for key in keys:
        try:
            data = json.loads(vault.store.read(vault.archive_bucket, key).decode("utf-8"))
        except ObjectNotFound:
            log.error("audit checkpoint %s is listed but missing from the bucket", key)
            continue
        return key, Checkpoint(
            count=int(data["count"]),
            head_hash=str(data["head_hash"]),
            created_at=datetime.fromisoformat(data["created_at"]),
        )
    return None


def verify_audit(*, engine: Engine, vault: Vault) -> AuditVerification:
    """Walks the chain, then checks it still holds the newest checkpointed head."""
    chain = audit_log.verify(engine)
    found = latest_checkpoint(engine, vault)
    if found is None:
        return AuditVerification(chain=chain)
    key, checkpoint = found
    # Compare with what the database holds now, whether or not the chain verified up to there.
    stored_count = audit_log.head(engine)[0]
    problem = check_against_checkpoint(audit_log.hash_at(engine, checkpoint.count), stored_count, checkpoint)
    return AuditVerification(
        chain=chain, checkpoint=checkpoint, checkpoint_key=key, checkpoint_problem=problem
    )


def write_checkpoint(*, engine: Engine, vault: Vault, clock: Clock = utcnow) -> AuditVerification:
    """Verifies, then writes {count, head_hash} to checkpoints/<timestamp>.json under retention.

    A broken chain is announced (archive.audit_chain_broken.v1) and not checkpointed, so a bad state
    never becomes the reference.
    """
    result = verify_audit(engine=engine, vault=vault)
    now = clock()
    if not result.ok:
        reason = result.checkpoint_problem or result.chain.reason or "audit chain broken"
        log.error("audit chain verification failed: %s", reason)
        with engine.begin() as conn:
            emit(
                conn,
                messages.AUDIT_CHAIN_BROKEN,
                {
                    "count": result.chain.count,
                    "head_hash": result.chain.head_hash,
                    "broken_seq": result.chain.broken_seq,
                    "reason": reason,
                    "detected_at": now.isoformat(),
                },
            )
        return result
    last_count = result.checkpoint.count if result.checkpoint is not None else 0
    if result.chain.count == last_count:
        return result  # nothing new since the last checkpoint (or nothing at all yet)
    key = _checkpoint_key(now)
    body = json.dumps(
        {"count": result.chain.count, "head_hash": result.chain.head_hash, "created_at": now.isoformat()},
        sort_keys=True,
    ).encode("utf-8")
    retain_until = vault.retention.decide(vault.retention.default_class, now).retain_until
    vault.store.put(
        vault.archive_bucket,
        key,
        body,
        size=len(body),
        content_type="application/json",
        sha256=hashlib.sha256(body).hexdigest(),
        retention=Retention(mode=cast(RetentionMode, vault.lock_mode), retain_until=retain_until),
    )
    with engine.begin() as conn:
        repository.add_checkpoint(
            conn, key=key, count=result.chain.count, head_hash=result.chain.head_hash, created_at=now
        )
    log.info("audit checkpoint %s: %d entries, head %s", key, result.chain.count, result.chain.head_hash)
    return AuditVerification(
        chain=result.chain,
        checkpoint=Checkpoint(result.chain.count, result.chain.head_hash, now),
        checkpoint_key=key,
    )
