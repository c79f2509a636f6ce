"""Archiving from events: copying staged files into the object-locked bucket, records, signature reports."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, BinaryIO, cast

from shared.envelope import Envelope
from shared.filenames import clean_filename
from shared.inbox import claim
from shared.messaging import PermanentError
from shared.objectstore.port import ChecksumMismatch as StoreChecksumMismatch
from shared.objectstore.port import (
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    Retention,
    RetentionMode,
    StoredObject,
    VerifiedBytes,
)
from sqlalchemy.engine import Connection, Engine

from archive import messages
from archive.adapters import audit_log, repository
from archive.adapters.db import inbox
from archive.adapters.repository import DocumentContext
from archive.common import CONSUMER, Clock, Vault, already_handled, emit, load_or_reject, utcnow
from archive.domain.acceptance import (
    HEADER_WINDOW,
    TRAILER_WINDOW,
    Refused,
    check_acceptable,
    declares_pdf,
    scan_pdf,
)
from archive.domain.audit import AuditEvent
from archive.domain.errors import ChecksumMismatch
from archive.domain.records import SOURCE_ATTACHMENT, SOURCE_REPORT, Record, archive_key
from archive.domain.signatures import BottomLine, SignatureReport
from archive.signatures import SignatureVerifier

log = logging.getLogger(__name__)

# Archiving holds one file at a time; typical scans (up to tens of MB) stay in memory, larger spill to disk.
ARCHIVE_SPOOL_IN_MEMORY = 64 * 1024 * 1024


@dataclass(frozen=True)
class IncomingDocument:
    """One file an event announced, in the staging bucket."""

    source_ref: str
    source_kind: str
    filename: str
    content_type: str
    size: int
    sha256: str
    bucket: str
    key: str
    document_type: str | None
    # The name as the event carried it, before cleaning (kept in the audit entry when it differs).
    filename_as_sent: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A document in the archive bucket, checked, with what the record will say about it."""

    document: IncomingDocument
    stored: StoredObject
    retention_class: str
    report: SignatureReport
    content_type: str
    content_flags: tuple[str, ...]
    retention_basis: str


@dataclass(frozen=True)
class Refusal:
    """A document the archive did not keep, and why (recorded in the audit chain)."""

    document: IncomingDocument
    reason: str


@dataclass(frozen=True)
class Spooled:
    """One stored object read once: what the store says about it and its bytes, in a spool to validate.

    In memory the bytes are also `verified`: the store hashed them as they arrived, so the archive's put can
    take that digest instead of hashing them again. A file too large for memory is spooled to disk and put
    from there (the put then hashes it, once)."""

    info: StoredObject
    spool: IO[bytes]
    verified: VerifiedBytes | None

    def upload_body(self) -> VerifiedBytes | BinaryIO:
        if self.verified is not None:
            return self.verified
        self.spool.seek(0)
        return cast(BinaryIO, self.spool)


def _read_verified(store: ObjectStore, bucket: str, key: str, sha256: str) -> Spooled:
    """One GET of the object: its stat and its bytes in a spool; ChecksumMismatch unless they are `sha256`.

    The recorded SHA-256 must be the announced one before a byte is read, and the store re-hashes every byte
    it returns against that record (ChecksumMismatch at the end otherwise), so the spool holds exactly the
    bytes that hash to `sha256`.
    """
    try:
        with store.open_with_info(bucket, key) as (info, chunks):
            if info.sha256 != sha256:
                raise ChecksumMismatch(f"{bucket}/{key}: recorded sha256 {info.sha256}, expected {sha256}")
            if info.size <= ARCHIVE_SPOOL_IN_MEMORY:
                verified = chunks.read_all()
                # pyHanko parses with many tiny reads: a BytesIO over one bytes object keeps each a C call,
                # and shares that object with the upload instead of copying it.
                return Spooled(info, io.BytesIO(verified.data), verified)
            spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
            try:
                for chunk in chunks:
                    spool.write(chunk)
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            return Spooled(info, spool, None)
    except StoreChecksumMismatch as exc:
        raise ChecksumMismatch(str(exc)) from exc


def _archived_copy(vault: Vault, key: str, doc: IncomingDocument) -> tuple[StoredObject, IO[bytes]]:
    """The copy an earlier delivery put into the archive, read once and checked against the announced hash."""
    try:
        read = _read_verified(vault.store, vault.archive_bucket, key, doc.sha256)
    except ChecksumMismatch as exc:
        raise ChecksumMismatch(f"the archived copy does not match: {exc}") from exc
    return read.info, read.spool


class _Background:
    """`work(argument)` on a thread of its own; `result()` waits for it and answers it or raises its error."""

    def __init__(self, work: Callable[[IO[bytes]], SignatureReport], argument: IO[bytes]) -> None:
        self._outcome: SignatureReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(work, argument), name="archive-signature-check", daemon=True
        )
        self._thread.start()

    def _run(self, work: Callable[[IO[bytes]], SignatureReport], argument: IO[bytes]) -> None:
        try:
            self._outcome = work(argument)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits in result()
            self._error = exc

    def result(self) -> SignatureReport:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome


def _head_and_tail(spool: IO[bytes], size: int) -> tuple[bytes, bytes]:
    spool.seek(0)
    head = spool.read(HEADER_WINDOW)
    spool.seek(max(0, size - TRAILER_WINDOW))
    tail = spool.read(TRAILER_WINDOW)
    spool.seek(0)
    return head, tail


def _accept(vault: Vault, doc: IncomingDocument, info: StoredObject, spool: IO[bytes]) -> str:
    """The normalised content type; Refused unless the file passes the checks intake applies (the archive
    trusts no event blindly)."""
    head, tail = _head_and_tail(spool, info.size)
    return check_acceptable(
        filename=doc.filename,
        content_type=doc.content_type,
        announced_size=doc.size,
        stored_size=info.size,
        max_bytes=vault.max_file_bytes,
        head=head,
        tail=tail,
    )


def _content_flags(
    doc: IncomingDocument, content_type: str, spool: IO[bytes], data: bytes | None
) -> tuple[str, ...]:
    """Active content a PDF carries (script, embedded files, launch actions): flagged for the auditor."""
    if data is None:
        spool.seek(0)
        data = spool.read()
        spool.seek(0)
    if not (declares_pdf(doc.filename, content_type) or b"%PDF-" in data[:HEADER_WINDOW]):
        return ()
    return scan_pdf(data).flags


def _with_granted_retention(
    vault: Vault, stored: StoredObject, claimed: str, report: SignatureReport, now: datetime
) -> tuple[StoredObject, str]:
    """Extends the lock to the class the document type asks for once its signature proves its origin.

    The put locks the object for the class an unproven document may have; locks can only be extended, so
    a valid signature lengthens it here (again harmlessly on a redelivery)."""
    granted = vault.retention.grant(claimed, signature_valid=report.bottom_line is BottomLine.VALID)
    if granted == vault.retention.grant(claimed, signature_valid=False):
        return stored, granted  # the put locked it for this class already
    wanted = vault.retention.decide(granted, now).retain_until
    # Stores keep whole seconds: a lock within a second of the wanted instant is that lock.
    if stored.retention is not None and stored.retention.retain_until >= wanted - timedelta(seconds=1):
        return stored, granted
    vault.store.set_retention(
        stored.bucket, stored.key, Retention(mode=cast(RetentionMode, vault.lock_mode), retain_until=wanted)
    )
    return vault.store.stat(stored.bucket, stored.key), granted


def _basis(doc: IncomingDocument, claimed: str, granted: str, report: SignatureReport) -> str:
    if doc.source_kind == SOURCE_REPORT:
        return f"unit report: class {granted}"
    said = f"document type {doc.document_type!r}" if doc.document_type else "no document type"
    if granted == claimed:
        return f"{said}: class {granted} (signature {report.bottom_line.value})"
    return f"{said} asks for class {claimed}; signature {report.bottom_line.value}, so class {granted}"


def _ensure_archived(
    vault: Vault,
    verify: Callable[[IO[bytes]], SignatureReport],
    directive_id: str,
    doc: IncomingDocument,
    now: datetime,
) -> Prepared:
    """Checks and copies staging → archive once; answers the archived object with its class and reports.

    The staged file is read once (its recorded and its actual SHA-256 must be the announced one), checked as
    intake checks an upload (Refused otherwise, before anything is written) and written to the archive: by
    the store itself (a server-side copy whose SHA-256, computed by the store, must be the announced one)
    where it can keep every guarantee that way, else from that same buffer; the put compares the digest
    that read computed with the announced SHA-256 (it hashes only a file spooled to disk) and the server
    confirms the checksum of what it stored. The key is
    deterministic and the put refuses to replace a locked object, so a redelivery finds the first copy
    (ObjectLocked), which is then read and checked instead. Either way the signatures are validated on
    bytes that hash to the announced SHA-256, which are the bytes the archive holds: validating them is
    validating what auditors will retrieve, without fetching the object again.

    A file read into memory is validated on a second thread while the put sends it: pyHanko works in this
    process and the put mostly waits on the store, so the two overlap. Both only read the same immutable
    bytes.
    """
    key = archive_key(directive_id, doc.sha256)
    claimed = vault.retention.class_for(doc.document_type, is_report=doc.source_kind == SOURCE_REPORT)
    unproven = vault.retention.grant(claimed, signature_valid=False)
    try:
        staged = _read_verified(vault.store, doc.bucket, doc.key, doc.sha256)
    except ObjectNotFound:
        # Staging may be cleaned up after a first, successful copy: the archived copy is then the one to use.
        try:
            stored, spool = _archived_copy(vault, key, doc)
        except ObjectNotFound:
            raise ObjectNotFound(f"{doc.bucket}/{doc.key} is missing and was never archived") from None
        with spool:
            content_type = _accept(vault, doc, stored, spool)
            report = verify(spool)
            flags = _content_flags(doc, content_type, spool, None)
        stored, granted = _with_granted_retention(vault, stored, claimed, report, now)
        return Prepared(
            doc, stored, granted, report, content_type, flags, _basis(doc, claimed, granted, report)
        )
    with staged.spool:
        content_type = _accept(vault, doc, staged.info, staged.spool)
        data = staged.verified.data if staged.verified is not None else None
        checking = _Background(verify, io.BytesIO(data)) if data is not None else None
        try:
            decision = vault.retention.decide(unproven, now)
            retention = Retention(
                mode=cast(RetentionMode, vault.lock_mode), retain_until=decision.retain_until
            )
            # The store copies the staged object itself where it can keep every guarantee that way (it
            # answers the SHA-256 of its copy, compared with the announced one); else the bytes just read
            # are uploaded.
            copied = vault.store.server_copy(
                staged.info, vault.archive_bucket, key, sha256=doc.sha256, retention=retention
            )
            stored = copied or vault.store.put(
                vault.archive_bucket,
                key,
                staged.upload_body(),
                size=staged.info.size,
                content_type=staged.info.content_type,
                sha256=doc.sha256,
                metadata=staged.info.metadata,
                retention=retention,
            )
            # Scanned here so it overlaps the signature check on the other thread (both only read).
            flags = _content_flags(doc, content_type, staged.spool, data)
        except ObjectLocked:
            # An earlier delivery's copy. It is read and must hash to the announced SHA-256 too, so it
            # holds the very bytes being validated.
            stored, archived = _archived_copy(vault, key, doc)
            with archived:
                report = checking.result() if checking is not None else verify(archived)
                flags = _content_flags(doc, content_type, archived, data)
            stored, granted = _with_granted_retention(vault, stored, claimed, report, now)
            return Prepared(
                doc, stored, granted, report, content_type, flags, _basis(doc, claimed, granted, report)
            )
        except StoreChecksumMismatch as exc:
            raise ChecksumMismatch(str(exc)) from exc
        finally:
            if checking is not None:
                # Never leave the check running behind an error; its outcome is used below or dropped.
                with contextlib.suppress(Exception):
                    checking.result()
        if checking is not None:
            report = checking.result()
        else:
            staged.spool.seek(0)
            report = verify(staged.spool)
    stored, granted = _with_granted_retention(vault, stored, claimed, report, now)
    return Prepared(doc, stored, granted, report, content_type, flags, _basis(doc, claimed, granted, report))


def prepare(
    vault: Vault, verifier: SignatureVerifier, directive_id: str, docs: list[IncomingDocument], now: datetime
) -> tuple[list[Prepared], list[Refusal]]:
    """Archives each document that passes the checks; the others come back as refusals, nothing written."""
    prepared: list[Prepared] = []
    refused: list[Refusal] = []
    for doc in docs:
        try:
            prepared.append(_ensure_archived(vault, verifier.verify_stream, directive_id, doc, now))
        except Refused as exc:
            log.warning("directive %s: %s refused: %s", directive_id, doc.filename, exc)
            refused.append(Refusal(doc, str(exc)))
    return prepared, refused


def refusal_events(
    envelope: Envelope, directive_id: str, refused: list[Refusal], now: datetime
) -> list[AuditEvent]:
    """One `record_refused` audit entry per refused document: the chain says what was not kept and why."""
    return [
        AuditEvent(
            action="record_refused",
            actor="service:archive",
            occurred_at=now,
            directive_id=directive_id,
            source_event_id=envelope.id,
            details={
                "filename": item.document.filename,
                "filename_as_sent": item.document.filename_as_sent,
                "content_type": item.document.content_type,
                "size": item.document.size,
                "sha256": item.document.sha256,
                "source_kind": item.document.source_kind,
                "reason": item.reason,
            },
        )
        for item in refused
    ]


def _as_sent(doc: IncomingDocument) -> dict[str, str]:
    """The raw name, for the audit entry, when cleaning changed it."""
    if doc.filename_as_sent is None or doc.filename_as_sent == doc.filename:
        return {}
    return {"filename_as_sent": doc.filename_as_sent}


def store_records(
    conn: Connection,
    envelope: Envelope,
    directive_id: str,
    prepared: list[Prepared],
    context: DocumentContext,
    vault: Vault,
    now: datetime,
    audit: list[AuditEvent],
) -> list[str]:
    """Inserts the records and their events; their audit entries go to `audit`, for the caller to append
    last (the audit chain's lock is then held only for the append and the commit)."""
    created: list[str] = []
    for item in prepared:
        doc, stored = item.document, item.stored
        if repository.record_exists(conn, envelope.id, doc.source_ref):
            continue
        retention = stored.retention
        record = Record(
            id=str(uuid.uuid4()),
            directive_id=directive_id,
            source_event_id=envelope.id,
            source_kind=doc.source_kind,
            source_ref=doc.source_ref,
            filename=doc.filename,
            content_type=item.content_type,
            size=stored.size,
            sha256=stored.sha256,
            bucket=stored.bucket,
            key=stored.key,
            version_id=stored.version_id,
            retention_class=item.retention_class,
            retain_until=retention.retain_until
            if retention
            else vault.retention.decide(item.retention_class, now).retain_until,
            lock_mode=retention.mode if retention else vault.lock_mode,
            # Archiving never holds a record: a legal hold is an admin's act (PUT .../legal-hold).
            legal_hold=False,
            legal_hold_reason=None,
            signature_status=item.report.bottom_line.value,
            archived_at=now,
            content_flags=item.content_flags,
        )
        report_dict = item.report.to_dict()
        repository.insert_record(conn, repository.record_row(record, report_dict, context))
        created.append(record.id)
        payload = {
            "record_id": record.id,
            "directive_id": directive_id,
            "source_event_id": envelope.id,
            "source_kind": record.source_kind,
            "filename": record.filename,
            "content_type": record.content_type,
            "size": record.size,
            "sha256": record.sha256,
            "bucket": record.bucket,
            "key": record.key,
            "version_id": record.version_id,
            "retention_class": record.retention_class,
            "retain_until": record.retain_until.isoformat(),
            "lock_mode": record.lock_mode,
            "legal_hold": record.legal_hold,
            "signature_status": record.signature_status,
        }
        audit.append(
            AuditEvent(
                action="record_archived",
                actor="service:archive",
                occurred_at=now,
                directive_id=directive_id,
                record_id=record.id,
                source_event_id=envelope.id,
                details={
                    "filename": record.filename,
                    **_as_sent(doc),
                    "sha256": record.sha256,
                    "key": record.key,
                    "version_id": record.version_id,
                    "retention_class": record.retention_class,
                    "retention_basis": item.retention_basis,
                    "retain_until": record.retain_until.isoformat(),
                    "legal_hold": record.legal_hold,
                    "signature_status": record.signature_status,
                    "content_flags": list(record.content_flags),
                },
            )
        )
        emit(conn, messages.RECORD_ARCHIVED, payload)
        if item.report.bottom_line is BottomLine.INVALID:
            signatures = report_dict["signatures"]
            audit.append(
                AuditEvent(
                    action="signature_invalid",
                    actor="service:archive",
                    occurred_at=now,
                    directive_id=directive_id,
                    record_id=record.id,
                    source_event_id=envelope.id,
                    details={"filename": record.filename, "signatures": signatures},
                )
            )
            emit(
                conn,
                messages.SIGNATURE_INVALID,
                {
                    "record_id": record.id,
                    "directive_id": directive_id,
                    "filename": record.filename,
                    "sha256": record.sha256,
                    "bottom_line": item.report.bottom_line.value,
                    "signatures": signatures,
                },
            )
    return created


def handle_directive_registered(
    envelope: Envelope,
    *,
    engine: Engine,
    vault: Vault,
    verifier: SignatureVerifier,
    clock: Clock = utcnow,
) -> list[str]:
    """Archives every attachment of a registered directive; returns the ids of records created now."""
    payload = load_or_reject(messages.DirectiveRegisteredIn(), envelope)
    if already_handled(engine, envelope.id):
        return []
    directive_id = payload["directive_id"]
    metadata = payload["metadata"]
    docs = [
        IncomingDocument(
            source_ref=att["id"],
            source_kind=SOURCE_ATTACHMENT,
            filename=clean_filename(att["filename"]),
            filename_as_sent=att["filename"],
            content_type=att["content_type"],
            size=att["size"],
            sha256=att["sha256"],
            bucket=att["bucket"],
            key=att["key"],
            document_type=metadata.get("document_type"),
        )
        for att in payload["attachments"]
    ]
    now = clock()
    try:
        # Object-store work happens before the transaction so database locks are held only briefly.
        prepared, refused = prepare(vault, verifier, directive_id, docs, now)
    except ChecksumMismatch as exc:
        raise PermanentError(f"directive {directive_id}: {exc}") from exc
    with engine.begin() as conn:
        if not claim(conn, inbox, envelope.id, CONSUMER):
            return []
        repository.upsert_directive(
            conn,
            {
                "directive_id": directive_id,
                "source_event_id": envelope.id,
                "arrival_number": payload.get("arrival_number"),
                "arrival_date": payload.get("arrival_date"),
                "received_at": payload.get("received_at"),
                "metadata": metadata,
                "registered_at": envelope.occurred_at,
            },
        )
        audit = [
            AuditEvent(
                action="directive_registered",
                actor=f"service:{envelope.producer}",
                occurred_at=envelope.occurred_at,
                directive_id=directive_id,
                source_event_id=envelope.id,
                details={
                    "arrival_number": payload.get("arrival_number"),
                    "number": metadata.get("number"),
                    "issuer": (metadata.get("issuer") or {}).get("name"),
                    "subject": metadata.get("subject"),
                    "attachments": [{"filename": d.filename, "sha256": d.sha256} for d in docs],
                },
            )
        ]
        created = store_records(
            conn, envelope, directive_id, prepared, DocumentContext.from_metadata(metadata), vault, now, audit
        )
        audit.extend(refusal_events(envelope, directive_id, refused, now))
        audit_log.append_many(conn, audit)
        return created
