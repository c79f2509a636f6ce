"""A directive's life after registration: revoked by its sender (over the exchange) or by a clerk.

Intake owns the directive's state; the revocation travels as intake.directive_revoked.v1 through the
outbox, so routing cancels the tasks and the archive records it whatever is down at the moment."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from intake.adapters.repository import DirectiveRepository
from intake.adapters.spool import BytesBlob
from intake.adapters.staging import StagingArea, staging_key
from intake.domain.enums import DirectiveStatus
from intake.domain.errors import DirectiveNotFound, InvalidMetadata, LifecycleConflict
from intake.domain.models import Directive, StoredAttachment
from intake.domain.status import LifecycleKind, state_refusal_reason
from intake.domain.text import collapse
from intake.messages import EXCHANGE, directive_revoked_event
from intake.status import Department, lifecycle_status, record_lifecycle_status

MAX_REASON = 2000


__all__ = ["Evidence", "LifecycleConflict", "Revocation", "revoke_directive"]


@dataclass(frozen=True)
class Evidence:
    """The file that asked for the change (an edXML revocation packet), kept with the directive."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Revocation:
    directive: Directive
    changed: bool


def revoke_directive(
    directive_id: str,
    *,
    reason: str,
    actor: str,
    repository: DirectiveRepository,
    staging: StagingArea,
    clock: Callable[[], datetime],
    department: Department,
    evidence: Evidence | None = None,
) -> Revocation:
    """Marks the directive revoked and announces it; revoking a revoked directive changes nothing.

    The sender is told, each once: 15 (đồng ý lấy lại) in the revocation's own transaction, or 16 (từ chối
    lấy lại) with the reason when the directive's state refuses it.
    Raises InvalidMetadata (no reason), DirectiveNotFound, LifecycleConflict (replaced, rejected)."""
    why = collapse(reason or "")
    if not why:
        raise InvalidMetadata("a reason is required to revoke a directive", field="reason")
    if len(why) > MAX_REASON:
        raise InvalidMetadata(f"longer than {MAX_REASON} characters", field="reason")
    directive = repository.get(directive_id)
    if directive is None:
        raise DirectiveNotFound(f"no directive {directive_id}")
    if directive.status is DirectiveStatus.REVOKED:
        return Revocation(directive, changed=False)
    if directive.status is not DirectiveStatus.REGISTERED:
        _refused(directive, repository, department, actor, clock)
        raise LifecycleConflict(f"directive {directive_id} is {directive.status.value}; it cannot be revoked")
    stored = None
    if evidence is not None:
        # Staged BEFORE the transaction, like a registration's files: the row that names it commits after.
        sha256 = hashlib.sha256(evidence.data).hexdigest()
        key = staging_key(directive.id, sha256)
        staging.put(key, BytesBlob(evidence.data), content_type=evidence.content_type, sha256=sha256)
        stored = StoredAttachment(
            id=str(uuid.uuid4()),
            filename=evidence.filename,
            content_type=evidence.content_type,
            size=len(evidence.data),
            sha256=sha256,
            bucket=staging.bucket,
            key=key,
        )
    packet = None
    if stored is not None:
        packet = {
            "id": stored.id,
            "filename": stored.filename,
            "content_type": stored.content_type,
            "size": stored.size,
            "sha256": stored.sha256,
            "bucket": stored.bucket,
            "key": stored.key,
        }
    now = clock()
    event = directive_revoked_event(directive, reason=why, at=now, by=actor, packet=packet)
    accepted = lifecycle_status(
        directive, LifecycleKind.REVOCATION, accepted=True, department=department, at=now, actor=actor
    )
    changed = repository.set_status(
        directive.id,
        expected=DirectiveStatus.REGISTERED.value,
        status=DirectiveStatus.REVOKED.value,
        event=event,
        exchange=EXCHANGE,
        evidence=stored,
        statuses=[accepted],
    )
    again = repository.get(directive.id)
    assert again is not None
    if not changed and again.status is not DirectiveStatus.REVOKED:
        _refused(again, repository, department, actor, clock)
        raise LifecycleConflict(f"directive {directive_id} changed meanwhile; read it again")
    return Revocation(again, changed=changed)


def _refused(
    directive: Directive,
    repository: DirectiveRepository,
    department: Department,
    actor: str,
    clock: Callable[[], datetime],
) -> None:
    record_lifecycle_status(
        repository.engine,
        directive,
        LifecycleKind.REVOCATION,
        accepted=False,
        department=department,
        reason=state_refusal_reason(directive.status),
        actor=actor,
        clock=clock,
    )
