"""A directive's life after registration: revoked, updated or replaced by its sender (over the exchange)
or by a clerk.

Intake owns the directive's state; each change travels as an event through the outbox
(intake.directive_revoked.v1, intake.directive_updated.v1, intake.directive_replaced.v1), so routing
changes the tasks and the archive records it whatever is down at the moment."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from intake.adapters.repository import DirectiveRepository
from intake.adapters.spool import BytesBlob
from intake.adapters.staging import StagingArea, staging_key
from intake.domain.enums import DirectiveStatus
from intake.domain.errors import DirectiveNotFound, InvalidMetadata, LifecycleConflict
from intake.domain.files import check_attachment
from intake.domain.models import Directive, StoredAttachment, new_metadata
from intake.domain.status import LifecycleKind, state_refusal_reason
from intake.domain.text import collapse, fold, sanitize_filename
from intake.handlers import Submission, Upload, register_directive, request_fingerprint
from intake.messages import (
    EXCHANGE,
    attachment_wire,
    directive_replaced_event,
    directive_revoked_event,
    directive_updated_event,
)
from intake.status import Department, lifecycle_status, record_lifecycle_status

MAX_REASON = 2000

__all__ = [
    "Changes",
    "Evidence",
    "LifecycleConflict",
    "Replacement",
    "Revocation",
    "Update",
    "replace_directives",
    "revoke_directive",
    "update_directive",
]


@dataclass(frozen=True)
class Evidence:
    """The file that asked for the change (an edXML revocation packet), kept with the directive."""

    filename: str
    content_type: str
    data: bytes


def stage_evidence(directive_id: str, evidence: Evidence, staging: StagingArea) -> StoredAttachment:
    """Stages the file that asked for a change BEFORE the transaction that names it, as a registration's
    files are: a committed row always has its bytes in the store."""
    sha256 = hashlib.sha256(evidence.data).hexdigest()
    key = staging_key(directive_id, sha256)
    staging.put(key, BytesBlob(evidence.data), content_type=evidence.content_type, sha256=sha256)
    return StoredAttachment(
        id=str(uuid.uuid4()),
        filename=evidence.filename,
        content_type=evidence.content_type,
        size=len(evidence.data),
        sha256=sha256,
        bucket=staging.bucket,
        key=key,
    )


def _reason(reason: str | None, *, required: str | None = None) -> str | None:
    """The reason, whitespace collapsed; `required` says what it is required for (None: optional)."""
    why = collapse(reason or "")
    if not why:
        if required:
            raise InvalidMetadata(f"a reason is required {required}", field="reason")
        return None
    if len(why) > MAX_REASON:
        raise InvalidMetadata(f"longer than {MAX_REASON} characters", field="reason")
    return why


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
    why = _reason(reason, required="to revoke a directive")
    assert why is not None
    directive = repository.get(directive_id)
    if directive is None:
        raise DirectiveNotFound(f"no directive {directive_id}")
    if directive.status is DirectiveStatus.REVOKED:
        return Revocation(directive, changed=False)
    if directive.status is not DirectiveStatus.REGISTERED:
        _refused(directive, LifecycleKind.REVOCATION, repository, department, actor, clock)
        raise LifecycleConflict(f"directive {directive_id} is {directive.status.value}; it cannot be revoked")
    stored = None if evidence is None else stage_evidence(directive.id, evidence, staging)
    packet = None if stored is None else attachment_wire(stored)
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
        _refused(again, LifecycleKind.REVOCATION, repository, department, actor, clock)
        raise LifecycleConflict(f"directive {directive_id} changed meanwhile; read it again")
    return Revocation(again, changed=changed)


def _refused(
    directive: Directive,
    kind: LifecycleKind,
    repository: DirectiveRepository,
    department: Department,
    actor: str,
    clock: Callable[[], datetime],
) -> None:
    """Tells the sender, once, that its revocation, update or replacement of `directive` was refused (16)
    because of the directive's state, with that state as the reason."""
    record_lifecycle_status(
        repository.engine,
        directive,
        kind,
        accepted=False,
        department=department,
        reason=state_refusal_reason(directive.status),
        actor=actor,
        clock=clock,
    )


# What an update may change; everything else about a directive is what its sender signed.
UPDATABLE = ("subject", "due_date", "urgency", "content")


@dataclass(frozen=True)
class Changes:
    """An update as asked: new values of some of UPDATABLE (None clears due_date or content), files to add."""

    values: Mapping[str, Any]
    uploads: tuple[Upload, ...] = ()


@dataclass(frozen=True)
class Update:
    directive: Directive
    changed: bool


def _wire(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return getattr(value, "value", value)


def update_directive(
    directive_id: str,
    changes: Changes,
    *,
    reason: str | None,
    actor: str,
    repository: DirectiveRepository,
    staging: StagingArea,
    clock: Callable[[], datetime],
    max_upload_bytes: int,
    department: Department,
    evidence: Evidence | None = None,
) -> Update:
    """Makes the directive's next revision from the changed fields and added files, and announces it.

    Values equal to the current ones and files it already has change nothing: the same update again
    (a repeated packet) answers the directive as it is. The sender is told 15 for each revision made (in its
    transaction), or 16 once when the directive's state refuses updates.
    Raises InvalidMetadata / InvalidAttachment naming the field, DirectiveNotFound, LifecycleConflict
    (revoked, replaced or refused)."""
    why = _reason(reason)
    for name in changes.values:
        if name not in UPDATABLE:
            raise InvalidMetadata(
                f"cannot be updated; only {', '.join(UPDATABLE)} and attachments", field=name
            )
    directive = repository.get(directive_id)
    if directive is None:
        raise DirectiveNotFound(f"no directive {directive_id}")
    if directive.status is not DirectiveStatus.REGISTERED:
        _refused(directive, LifecycleKind.UPDATE, repository, department, actor, clock)
        raise LifecycleConflict(f"directive {directive_id} is {directive.status.value}; it cannot be updated")
    meta = directive.metadata
    current: dict[str, Any] = {
        "subject": meta.subject,
        "due_date": meta.due_date,
        "urgency": meta.urgency.value,
        "content": meta.content,
    }
    wanted = {**current, **changes.values}
    # The directive's own rules (subject length, due date not before the issued date, known urgency).
    checked = new_metadata(
        issuer_name=meta.issuer.name,
        issuer_code=meta.issuer.code,
        number=meta.number.display,
        document_type=meta.document_type,
        issued_date=meta.issued_date,
        subject=wanted["subject"] or "",
        urgency=wanted["urgency"] or "",
        due_date=wanted["due_date"],
        content=wanted["content"],
    )
    now_values: dict[str, Any] = {
        "subject": checked.subject,
        "due_date": checked.due_date,
        "urgency": checked.urgency.value,
        "content": checked.content,
    }
    diff = {
        name: {"from": _wire(current[name]), "to": _wire(now_values[name])}
        for name in UPDATABLE
        if current[name] != now_values[name]
    }
    files = _stage_new_files(directive, changes.uploads, staging, max_upload_bytes)
    if not diff and not files:
        return Update(directive, changed=False)
    if files:
        diff["attachments"] = {"added": [{"id": f.id, "filename": f.filename} for f in files]}
    stored = None if evidence is None else stage_evidence(directive.id, evidence, staging)
    now = clock()
    revised = replace(
        directive,
        metadata=replace(
            meta,
            subject=checked.subject,
            due_date=checked.due_date,
            urgency=checked.urgency,
            content=checked.content,
        ),
        revision=directive.revision + 1,
    )
    event = directive_updated_event(
        revised,
        changes=diff,
        added=[attachment_wire(f) for f in files],
        reason=why,
        at=now,
        by=actor,
        packet=None if stored is None else attachment_wire(stored),
    )
    values: dict[str, Any] = {name: now_values[name] for name in UPDATABLE if name in diff}
    if "subject" in values:
        values["subject_folded"] = fold(checked.subject)
    done = repository.update(
        directive.id,
        revision=directive.revision,
        values=values,
        record={
            "at": now,
            "actor": actor,
            "reason": why,
            "changes": diff,
            "packet_id": None if stored is None else stored.id,
        },
        files=[*files, *([] if stored is None else [stored])],
        event=event,
        exchange=EXCHANGE,
        statuses=[
            lifecycle_status(
                revised,
                LifecycleKind.UPDATE,
                accepted=True,
                department=department,
                at=now,
                reason=why,
                actor=actor,
                occasion=str(revised.revision),
            )
        ],
    )
    if not done:
        raise LifecycleConflict(f"directive {directive_id} changed meanwhile; read it again")
    again = repository.get(directive.id)
    assert again is not None
    return Update(again, changed=True)


def _stage_new_files(
    directive: Directive, uploads: tuple[Upload, ...], staging: StagingArea, max_upload_bytes: int
) -> list[StoredAttachment]:
    """Checks every file as an upload is checked, then stages those the directive does not have yet."""
    kinds = [
        check_attachment(
            field=upload.field,
            filename=upload.filename,
            content_type=upload.content_type,
            size=upload.blob.size,
            head=upload.blob.head,
            tail=upload.blob.tail,
            max_bytes=max_upload_bytes,
        )
        for upload in uploads
    ]
    have = {a.sha256 for a in directive.attachments}
    files: list[StoredAttachment] = []
    for upload, kind in zip(uploads, kinds, strict=True):
        blob = upload.blob
        sha256 = blob.sha256
        if sha256 in have:
            continue
        have.add(sha256)
        key = staging_key(directive.id, sha256)
        staging.put(key, blob, content_type=kind, sha256=sha256)
        files.append(
            StoredAttachment(
                id=str(uuid.uuid4()),
                filename=sanitize_filename(upload.filename),
                content_type=kind,
                size=blob.size,
                sha256=sha256,
                bucket=staging.bucket,
                key=key,
            )
        )
    return files


@dataclass(frozen=True)
class Replacement:
    directive: Directive
    replaced: tuple[Directive, ...]
    created: bool


def replace_directives(
    targets: list[str],
    submission: Submission,
    *,
    reason: str | None,
    actor: str,
    repository: DirectiveRepository,
    staging: StagingArea,
    organisation: str,
    max_upload_bytes: int,
    clock: Callable[[], datetime],
    department: Department,
) -> Replacement:
    """Registers the new document (exactly as a registration) and marks each target `replaced` by it, with
    intake.directive_replaced.v1 for each; the two name each other.

    The same request again (same idempotency key and body) replays: the registration answers the first
    directive and a target it already replaced is left as it is. Each target's sender is told 15 in the
    transaction that marks it, or 16 once when its state refuses the replacement. Raises DirectiveNotFound
    (a target), LifecycleConflict (a target revoked, refused or replaced by another), and what a
    registration raises."""
    why = _reason(reason) or f"Thay thế bởi văn bản số {submission.metadata.number.display}"
    olds: list[Directive] = []
    replay_of: str | None = None
    if submission.idempotency_key is not None:
        hit = repository.find_idempotent(submission.submitted_by, submission.idempotency_key)
        # Only the same body again replays; another document under the key is not the replacement made.
        if hit is not None and hit.request_hash == request_fingerprint(submission):
            replay_of = hit.directive.id
    for target in targets:
        old = repository.get(target)
        if old is None:
            raise DirectiveNotFound(f"no directive {target}")
        if old.status is DirectiveStatus.REPLACED and old.replaced_by is not None:
            if old.replaced_by != replay_of:
                _refused(old, LifecycleKind.REPLACEMENT, repository, department, actor, clock)
                raise LifecycleConflict(f"directive {target} was already replaced by {old.replaced_by}")
        elif old.status is not DirectiveStatus.REGISTERED:
            _refused(old, LifecycleKind.REPLACEMENT, repository, department, actor, clock)
            raise LifecycleConflict(f"directive {target} is {old.status.value}; it cannot be replaced")
        olds.append(old)
    registration = register_directive(
        submission,
        repository=repository,
        staging=staging,
        organisation=organisation,
        max_upload_bytes=max_upload_bytes,
        clock=clock,
        department=department,
    )
    new = registration.directive
    for old in olds:
        if old.id == new.id:
            raise LifecycleConflict(f"directive {old.id} cannot replace itself")
        if old.status is DirectiveStatus.REPLACED:
            continue
        now = clock()
        marked = repository.set_status(
            old.id,
            expected=DirectiveStatus.REGISTERED.value,
            status=DirectiveStatus.REPLACED.value,
            event=directive_replaced_event(old, new, reason=why, at=now, by=actor),
            exchange=EXCHANGE,
            values={"replaced_by": new.id},
            link=(new.id, {"replaces": old.id}),
            statuses=[
                lifecycle_status(
                    old,
                    LifecycleKind.REPLACEMENT,
                    accepted=True,
                    department=department,
                    at=now,
                    reason=why,
                    actor=actor,
                )
            ],
        )
        if not marked:
            again = repository.get(old.id)
            if again is None or again.replaced_by != new.id:
                raise LifecycleConflict(
                    f"directive {old.id} changed meanwhile; directive {new.id} is registered but does not "
                    "replace it"
                )
    now_new = repository.get(new.id)
    assert now_new is not None
    replaced = tuple(d for d in (repository.get(old.id) for old in olds) if d is not None)
    return Replacement(now_new, replaced, registration.created)
