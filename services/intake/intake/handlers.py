"""Intake use cases: register a directive, read it back, browse and export the register."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.logs import current_correlation_id
from shared.objectstore.port import ChecksumMismatch, StoreUnavailable
from sqlalchemy.exc import IntegrityError

from intake.adapters.repository import DirectiveRepository, IdempotentHit, NewRegistration, RegisterQuery
from intake.adapters.spool import Blob, BytesBlob
from intake.adapters.staging import StagingArea, staging_key
from intake.domain.arrival import arrival_date, arrival_series
from intake.domain.edxml import Organ
from intake.domain.errors import (
    AttachmentNotFound,
    DirectiveNotFound,
    DuplicateDirective,
    IdempotencyConflict,
)
from intake.domain.files import check_attachment
from intake.domain.models import Directive, DirectiveMetadata, StoredAttachment
from intake.domain.text import sanitize_filename
from intake.messages import EXCHANGE, directive_registered_event
from intake.status import Department, registration_statuses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One submitted file; `field` is how the request named it (`files[0]`, `attachments[1]`).

    `data` is a Blob (spooled by the API as the body is read) or, for small files and tests, bytes.
    """

    field: str
    filename: str
    content_type: str
    data: Blob | bytes

    def __post_init__(self) -> None:
        if isinstance(self.data, bytes | bytearray):
            object.__setattr__(self, "data", BytesBlob(bytes(self.data)))

    @property
    def blob(self) -> Blob:
        data = self.data
        return BytesBlob(bytes(data)) if isinstance(data, bytes | bytearray) else data


@dataclass(frozen=True)
class Submission:
    metadata: DirectiveMetadata
    raw_metadata: str
    uploads: tuple[Upload, ...]
    submitted_by: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Registration:
    directive: Directive
    created: bool


def utc_now() -> datetime:
    return datetime.now(UTC)


def request_fingerprint(submission: Submission) -> str:
    """Identifies "the same body" for Idempotency-Key: canonical metadata JSON plus each file's digest."""
    try:
        canonical = json.dumps(json.loads(submission.raw_metadata), sort_keys=True, ensure_ascii=False)
    except ValueError:
        canonical = submission.raw_metadata
    digest = hashlib.sha256(canonical.encode("utf-8"))
    for upload in submission.uploads:
        digest.update(
            b"\x00" + upload.filename.encode("utf-8") + b"\x00" + upload.content_type.encode("utf-8")
        )
        digest.update(b"\x00" + upload.blob.sha256.encode("ascii"))
    return digest.hexdigest()


def _replay(hit: IdempotentHit, fingerprint: str) -> Registration:
    if hit.request_hash != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used for a different request body; use a new key for a new "
            f"submission (first request registered directive {hit.directive.id})"
        )
    return Registration(directive=hit.directive, created=False)


def _duplicate(existing_id: str, metadata: DirectiveMetadata) -> DuplicateDirective:
    return DuplicateDirective(
        f"{metadata.number.display} of {metadata.issuer.name} issued {metadata.issued_date.isoformat()} "
        f"is already registered as directive {existing_id}",
        existing_id=existing_id,
    )


def register_directive(
    submission: Submission,
    *,
    repository: DirectiveRepository,
    staging: StagingArea,
    organisation: str,
    max_upload_bytes: int,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    department: Department | None = None,
) -> Registration:
    """Stages the files, then numbers and stores the directive with its event in one transaction.

    Raises InvalidAttachment / AttachmentTooLarge (nothing stored), DuplicateDirective, IdempotencyConflict,
    StoreUnavailable (staged objects removed, as they are for a duplicate). A broker outage does not matter
    here: the outbox relay delivers the event later.
    """
    metadata = submission.metadata
    fingerprint = request_fingerprint(submission)
    owner = submission.submitted_by
    key = submission.idempotency_key
    if key is not None and (hit := repository.find_idempotent(owner, key)) is not None:
        return _replay(hit, fingerprint)
    content_types = [
        check_attachment(
            field=upload.field,
            filename=upload.filename,
            content_type=upload.content_type,
            size=upload.blob.size,
            head=upload.blob.head,
            tail=upload.blob.tail,
            max_bytes=max_upload_bytes,
        )
        for upload in submission.uploads
    ]
    # A document registered before is caught by the unique index inside the numbering transaction (its
    # number rolls back with it, its staged file is removed): no look-up round trip on every registration.
    directive_id = new_id()
    staged: list[str] = []
    files: list[StoredAttachment] = []
    try:
        for upload, content_type in zip(submission.uploads, content_types, strict=True):
            blob = upload.blob
            sha256 = blob.sha256
            object_key = staging_key(directive_id, sha256)
            if object_key not in staged:
                # Staged BEFORE the transaction: a committed directive always has its bytes in the store.
                staging.put(object_key, blob, content_type=content_type, sha256=sha256)
                staged.append(object_key)
            files.append(
                StoredAttachment(
                    id=new_id(),
                    filename=sanitize_filename(upload.filename),
                    content_type=content_type,
                    size=blob.size,
                    sha256=sha256,
                    bucket=staging.bucket,
                    key=object_key,
                )
            )
    except ChecksumMismatch as exc:
        staging.discard(staged)
        raise StoreUnavailable(f"the object store did not keep the file intact: {exc}") from exc
    except BaseException:
        staging.discard(staged)
        raise

    received_at = clock()
    series = arrival_series(organisation, received_at)

    def build(number: int) -> Directive:
        return Directive(
            id=directive_id,
            organisation=organisation,
            arrival_number=number,
            arrival_date=arrival_date(received_at),
            received_at=received_at,
            metadata=metadata,
            attachments=tuple(files),
            submitted_by=owner,
            raw_metadata=submission.raw_metadata,
        )

    try:
        directive = repository.register(
            NewRegistration(
                series=series,
                idempotency_owner=owner if key is not None else None,
                idempotency_key=key,
                request_hash=fingerprint,
                correlation_id=current_correlation_id(),
                build=build,
                event=directive_registered_event(build(1)),
                exchange=EXCHANGE,
                statuses=registration_statuses(
                    build(1), department=department or Department(Organ(organisation, organisation))
                ),
            )
        )
    except IntegrityError:
        staging.discard(staged)
        # A concurrent submission won the race for the same key or document: answer as if we came second.
        if key is not None and (hit := repository.find_idempotent(owner, key)) is not None:
            return _replay(hit, fingerprint)
        if (existing := repository.find_duplicate(metadata.duplicate_key)) is not None:
            raise _duplicate(existing, metadata) from None
        raise
    except BaseException:
        staging.discard(staged)
        raise
    log.info(
        "registered directive %s as arrival number %s/%s",
        directive.id,
        directive.arrival_number,
        series.year,
    )
    return Registration(directive=directive, created=True)


def _visible(directive: Directive, viewer: str | None) -> bool:
    return viewer is None or directive.submitted_by == viewer


def get_directive(
    directive_id: str, *, repository: DirectiveRepository, only_submitted_by: str | None = None
) -> Directive:
    """The directive; submitters (only_submitted_by) see only their own submissions."""
    directive = repository.get(directive_id)
    if directive is None or not _visible(directive, only_submitted_by):
        raise DirectiveNotFound(f"no directive {directive_id}")
    return directive


def open_attachment(
    directive_id: str,
    attachment_id: str,
    *,
    repository: DirectiveRepository,
    staging: StagingArea,
    only_submitted_by: str | None = None,
) -> tuple[StoredAttachment, AbstractContextManager[Iterator[bytes]]]:
    """The attachment's record and a context manager streaming its verified bytes."""
    directive = get_directive(directive_id, repository=repository, only_submitted_by=only_submitted_by)
    for attachment in directive.attachments:
        if attachment.id == attachment_id:
            return attachment, staging.open(attachment.bucket, attachment.key)
    raise AttachmentNotFound(f"directive {directive_id} has no attachment {attachment_id}")


def list_register(
    query: RegisterQuery, *, repository: DirectiveRepository, page: int, per_page: int
) -> tuple[list[Directive], int]:
    return repository.list(query, page=page, per_page=per_page)


def export_register(year: int, *, repository: DirectiveRepository) -> Iterator[Directive]:
    """The year's register in số đến order."""
    return repository.iter_register(RegisterQuery(year=year))
