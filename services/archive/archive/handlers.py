"""Use cases of the archive: archiving from events, fixity, legal holds, verified reads, audit checkpoints."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, BinaryIO, cast

import sqlalchemy as sa
from marshmallow import ValidationError
from shared.envelope import Envelope
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
from shared.outbox import add_to_outbox
from sqlalchemy.engine import Connection, Engine

from archive import messages
from archive.adapters import audit_log, repository
from archive.adapters.db import inbox, outbox
from archive.adapters.repository import DocumentContext
from archive.domain.audit import AuditEvent, ChainVerification, Checkpoint, check_against_checkpoint
from archive.domain.errors import ChecksumMismatch, FixityFailed
from archive.domain.fixity import FixityOutcome, FixityRunSummary, judge
from archive.domain.records import SOURCE_ATTACHMENT, SOURCE_REPORT, Record, archive_key, change_legal_hold
from archive.domain.retention import RetentionPolicy
from archive.domain.signatures import BottomLine, SignatureReport
from archive.signatures import SignatureVerifier

log = logging.getLogger(__name__)

CONSUMER = "archive"
# The event types under which a batch event's parts are kept, as if each had come on its own.
TASK_ASSIGNED_TYPE = ".".join(messages.TASK_ASSIGNED)
TASK_STATUS_CHANGED_TYPE = ".".join(messages.TASK_STATUS_CHANGED)
CHECKPOINT_PREFIX = "checkpoints/"
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# Archiving holds one file at a time; typical scans (up to tens of MB) stay in memory, larger spill to disk.
ARCHIVE_SPOOL_IN_MEMORY = 64 * 1024 * 1024

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


def _emit(conn: Connection, event: str, payload: dict[str, Any]) -> None:
    add_to_outbox(conn, outbox, messages.new_event(event, payload), exchange=messages.EXCHANGE)


def _already_handled(engine: Engine, message_id: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(inbox.c.message_id).where(
                inbox.c.message_id == message_id, inbox.c.consumer == CONSUMER
            )
        ).first()
    return found is not None


# --- archiving ------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Prepared:
    document: IncomingDocument
    stored: StoredObject
    retention_class: str
    report: SignatureReport


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


def _ensure_archived(
    vault: Vault,
    verify: Callable[[IO[bytes]], SignatureReport],
    directive_id: str,
    doc: IncomingDocument,
    now: datetime,
) -> tuple[StoredObject, str, SignatureReport]:
    """Copies staging → archive once; answers the archived object, its retention class and its signatures.

    The staged file is read once (its recorded and its actual SHA-256 must be the announced one) and written
    to the archive from that same buffer; the put compares the digest that read computed with the announced
    SHA-256 (it hashes only a file spooled to disk) and the server confirms the checksum of what it stored.
    The key is deterministic and the put refuses to replace a locked object, so a redelivery finds the first
    copy (ObjectLocked), which is then read and checked instead. Either way the signatures are validated on
    bytes that hash to the announced SHA-256, which are the bytes the archive holds: validating them is
    validating what auditors will retrieve, without fetching the object again.

    A file read into memory is validated on a second thread while the put sends it: pyHanko works in this
    process and the put mostly waits on the store, so the two overlap. Both only read the same immutable
    bytes.
    """
    key = archive_key(directive_id, doc.sha256)
    klass = vault.retention.class_for(doc.document_type, is_report=doc.source_kind == SOURCE_REPORT)
    try:
        staged = _read_verified(vault.store, doc.bucket, doc.key, doc.sha256)
    except ObjectNotFound:
        # Staging may be cleaned up after a first, successful copy: the archived copy is then the one to use.
        try:
            stored, spool = _archived_copy(vault, key, doc)
        except ObjectNotFound:
            raise ObjectNotFound(f"{doc.bucket}/{doc.key} is missing and was never archived") from None
        with spool:
            return stored, klass, verify(spool)
    with staged.spool:
        checking = (
            _Background(verify, io.BytesIO(staged.verified.data)) if staged.verified is not None else None
        )
        try:
            decision = vault.retention.decide(klass, now)
            stored = vault.store.put(
                vault.archive_bucket,
                key,
                staged.upload_body(),
                size=staged.info.size,
                content_type=staged.info.content_type,
                sha256=doc.sha256,
                metadata=staged.info.metadata,
                retention=Retention(
                    mode=cast(RetentionMode, vault.lock_mode), retain_until=decision.retain_until
                ),
                legal_hold=decision.legal_hold,
            )
        except ObjectLocked:
            # An earlier delivery's copy. It is read and must hash to the announced SHA-256 too, so it
            # holds the very bytes being validated.
            stored, archived = _archived_copy(vault, key, doc)
            with archived:
                report = checking.result() if checking is not None else verify(archived)
            return stored, klass, report
        except StoreChecksumMismatch as exc:
            raise ChecksumMismatch(str(exc)) from exc
        finally:
            if checking is not None:
                # Never leave the check running behind an error; its outcome is used below or dropped.
                with contextlib.suppress(Exception):
                    checking.result()
        if checking is not None:
            return stored, klass, checking.result()
        staged.spool.seek(0)
        return stored, klass, verify(staged.spool)


def _prepare(
    vault: Vault, verifier: SignatureVerifier, directive_id: str, docs: list[IncomingDocument], now: datetime
) -> list[Prepared]:
    prepared = []
    for doc in docs:
        stored, klass, report = _ensure_archived(vault, verifier.verify_stream, directive_id, doc, now)
        prepared.append(Prepared(doc, stored, klass, report))
    return prepared


def _store_records(
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
            content_type=doc.content_type,
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
            legal_hold=stored.legal_hold,
            legal_hold_reason="vinh_vien (permanent retention)" if stored.legal_hold else None,
            signature_status=item.report.bottom_line.value,
            archived_at=now,
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
                    "sha256": record.sha256,
                    "key": record.key,
                    "version_id": record.version_id,
                    "retention_class": record.retention_class,
                    "retain_until": record.retain_until.isoformat(),
                    "legal_hold": record.legal_hold,
                    "signature_status": record.signature_status,
                },
            )
        )
        _emit(conn, messages.RECORD_ARCHIVED, payload)
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
            _emit(
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
    try:
        payload = messages.load_payload(messages.DirectiveRegisteredIn(), envelope)
    except ValidationError as exc:
        raise PermanentError(f"malformed {envelope.type} payload: {exc.messages}") from exc
    if _already_handled(engine, envelope.id):
        return []
    directive_id = payload["directive_id"]
    metadata = payload["metadata"]
    docs = [
        IncomingDocument(
            source_ref=att["id"],
            source_kind=SOURCE_ATTACHMENT,
            filename=att["filename"],
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
        prepared = _prepare(vault, verifier, directive_id, docs, now)
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
        created = _store_records(
            conn, envelope, directive_id, prepared, DocumentContext.from_metadata(metadata), vault, now, audit
        )
        audit_log.append_many(conn, audit)
        return created


def handle_task_event(
    envelope: Envelope,
    *,
    engine: Engine,
    vault: Vault,
    verifier: SignatureVerifier,
    clock: Clock = utcnow,
) -> list[str]:
    """Keeps a routing task event in the history and the audit log; archives a report file it carries."""
    try:
        payload = messages.load_payload(messages.TaskEventIn(), envelope)
    except ValidationError as exc:
        raise PermanentError(f"malformed {envelope.type} payload: {exc.messages}") from exc
    if _already_handled(engine, envelope.id):
        return []
    directive_id = payload["directive_id"]
    task_id = payload.get("task_id") or payload.get("id")
    report = payload.get("report")
    with engine.connect() as conn:
        directive = repository.get_directive(conn, directive_id)
    metadata = dict(directive.metadata) if directive is not None else {}
    now = clock()
    prepared: list[Prepared] = []
    if report:
        doc = IncomingDocument(
            source_ref=f"report:{task_id or ''}:{report['sha256']}",
            source_kind=SOURCE_REPORT,
            filename=report["filename"],
            content_type=report["content_type"],
            size=report["size"],
            sha256=report["sha256"],
            bucket=report["bucket"],
            key=report["key"],
            document_type=None,
        )
        try:
            prepared = _prepare(vault, verifier, directive_id, [doc], now)
        except ChecksumMismatch as exc:
            raise PermanentError(f"report of directive {directive_id}: {exc}") from exc
    event_name = envelope.type.split(".", 1)[-1]
    unit = payload.get("unit") or payload.get("unit_code")
    status = payload.get("status") or payload.get("to_status")
    with engine.begin() as conn:
        if not claim(conn, inbox, envelope.id, CONSUMER):
            return []
        repository.insert_task_event(
            conn,
            {
                "event_id": envelope.id,
                "event_type": envelope.type,
                "directive_id": directive_id,
                "task_id": task_id,
                "unit": unit,
                "status": status,
                "occurred_at": envelope.occurred_at,
                "payload": envelope.payload,
            },
        )
        audit = [
            AuditEvent(
                action=event_name,
                actor=f"service:{envelope.producer}",
                occurred_at=envelope.occurred_at,
                directive_id=directive_id,
                source_event_id=envelope.id,
                details={"task_id": task_id, "unit": unit, "status": status, "report": report},
            )
        ]
        created = _store_records(
            conn, envelope, directive_id, prepared, DocumentContext.from_metadata(metadata), vault, now, audit
        )
        audit_log.append_many(conn, audit)
        return created


@dataclass(frozen=True)
class _TaskFact:
    """One task's line of a routing batch event: what the archive keeps of it."""

    directive_id: str
    task_id: str
    unit: str | None
    status: str | None
    document: dict[str, Any]


def _record_task_facts(
    envelope: Envelope, facts: list[_TaskFact], *, engine: Engine, event_type: str, action: str
) -> int:
    """Keeps a routing batch event as one `event_type` history row and one `action` audit entry per fact.

    The history and the audit log read as if each fact had come in its own event: fact n gets the history
    event id `<envelope id>#<n>`. Returns how many facts were recorded now (0 for a redelivery)."""
    actor = f"service:{envelope.producer}"
    with engine.begin() as conn:
        if not claim(conn, inbox, envelope.id, CONSUMER):
            return 0
        repository.insert_task_events(
            conn,
            [
                {
                    "event_id": f"{envelope.id}#{n}",
                    "event_type": event_type,
                    "directive_id": fact.directive_id,
                    "task_id": fact.task_id,
                    "unit": fact.unit,
                    "status": fact.status,
                    "occurred_at": envelope.occurred_at,
                    "payload": fact.document,
                }
                for n, fact in enumerate(facts)
            ],
        )
        audit_log.append_many(
            conn,
            [
                AuditEvent(
                    action=action,
                    actor=actor,
                    occurred_at=envelope.occurred_at,
                    directive_id=fact.directive_id,
                    source_event_id=envelope.id,
                    details={
                        "task_id": fact.task_id,
                        "unit": fact.unit,
                        "status": fact.status,
                        "report": None,
                    },
                )
                for fact in facts
            ],
        )
    return len(facts)


def handle_tasks_assigned(envelope: Envelope, *, engine: Engine) -> int:
    """Keeps routing.tasks_assigned.v1 as one `routing.task_assigned` history row and audit entry per task;
    returns how many tasks were recorded now (0 for a redelivery)."""
    try:
        payload = messages.load_payload(messages.TasksAssignedIn(), envelope)
        tasks = [(doc, messages.AssignedTaskIn().load(doc)) for doc in payload["tasks"]]
    except ValidationError as exc:
        raise PermanentError(f"malformed {envelope.type} payload: {exc.messages}") from exc
    directive_id = payload["directive_id"]
    strays = [task["id"] for doc, task in tasks if doc.get("directive_id", directive_id) != directive_id]
    if strays:
        raise PermanentError(
            f"{envelope.type} for directive {directive_id} carries other directives' tasks: {strays}"
        )
    facts = [_TaskFact(directive_id, task["id"], task["unit"], task["status"], doc) for doc, task in tasks]
    return _record_task_facts(
        envelope, facts, engine=engine, event_type=TASK_ASSIGNED_TYPE, action="task_assigned"
    )


def handle_tasks_acknowledged(envelope: Envelope, *, engine: Engine) -> int:
    """Keeps routing.tasks_acknowledged.v1 as one `routing.task_status_changed` history row and audit entry
    per status change; returns how many changes were recorded now (0 for a redelivery)."""
    try:
        payload = messages.load_payload(messages.TasksAcknowledgedIn(), envelope)
        changes = [(doc, messages.StatusChangeIn().load(doc)) for doc in payload["changes"]]
    except ValidationError as exc:
        raise PermanentError(f"malformed {envelope.type} payload: {exc.messages}") from exc
    facts = [
        _TaskFact(change["directive_id"], change["task_id"], change["unit"], change["status"], doc)
        for doc, change in changes
    ]
    return _record_task_facts(
        envelope, facts, engine=engine, event_type=TASK_STATUS_CHANGED_TYPE, action="task_status_changed"
    )


# --- fixity ---------------------------------------------------------------------------------------


def _measure(
    store: ObjectStore, bucket: str, key: str, sink: IO[bytes] | None = None
) -> tuple[str | None, str | None]:
    """SHA-256 and version of what the store returns now (None, None if it is gone)."""
    try:
        stat = store.stat(bucket, key)
    except ObjectNotFound:
        return None, None
    digest = hashlib.sha256()
    try:
        with store.open(bucket, key) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
    except StoreChecksumMismatch:
        # The store noticed too; our own digest of every byte it returned is the evidence we report.
        pass
    except ObjectNotFound:
        return None, None
    return digest.hexdigest(), stat.version_id


def record_fixity_outcome(
    conn: Connection, row: Any, outcome: FixityOutcome, *, trigger: str, actor: str, now: datetime
) -> None:
    repository.set_fixity(conn, row.id, ok=outcome.ok, checked_at=now, detail=outcome.detail)
    if outcome.ok:
        return
    audit_log.append(
        conn,
        AuditEvent(
            action="fixity_failed",
            actor=actor,
            occurred_at=now,
            directive_id=row.directive_id,
            record_id=row.id,
            details={
                "expected_sha256": row.sha256,
                "actual_sha256": outcome.actual_sha256,
                "detail": outcome.detail,
                "trigger": trigger,
            },
        ),
    )
    _emit(
        conn,
        messages.FIXITY_FAILED,
        {
            "record_id": row.id,
            "directive_id": row.directive_id,
            "bucket": row.bucket,
            "key": row.key,
            "expected_sha256": row.sha256,
            "actual_sha256": outcome.actual_sha256,
            "detail": outcome.detail,
            "detected_at": now.isoformat(),
            "trigger": trigger,
        },
    )


def check_record_row(vault: Vault, row: Any, sink: IO[bytes] | None = None) -> FixityOutcome:
    actual, version = _measure(vault.store, row.bucket, row.key, sink)
    return judge(
        row.id,
        expected_sha256=row.sha256,
        actual_sha256=actual,
        expected_version=row.version_id,
        actual_version=version,
    )


def check_fixity(
    record_id: str,
    *,
    engine: Engine,
    vault: Vault,
    actor: str,
    trigger: str = "manual",
    clock: Clock = utcnow,
) -> FixityOutcome:
    """Re-reads the record's object now; a mismatch is stored on the record, audited and announced."""
    with engine.connect() as conn:
        row = repository.get_record_row(conn, record_id)
    outcome = check_record_row(vault, row)
    now = clock()
    with engine.begin() as conn:
        record_fixity_outcome(conn, row, outcome, trigger=trigger, actor=actor, now=now)
        audit_log.append(
            conn,
            AuditEvent(
                action="fixity_checked",
                actor=actor,
                occurred_at=now,
                directive_id=row.directive_id,
                record_id=row.id,
                details={"ok": outcome.ok, "detail": outcome.detail, "trigger": trigger},
            ),
        )
    return outcome


def run_fixity_sweep(
    *,
    engine: Engine,
    vault: Vault,
    period_seconds: int,
    batch_limit: int = 500,
    clock: Clock = utcnow,
    trigger: str = "sweep",
) -> FixityRunSummary:
    """Checks the records whose last check is older than the period (never-checked first), in one run."""
    started = clock()
    summary = FixityRunSummary(trigger=trigger, started_at=started)
    with engine.begin() as conn:
        run_id = repository.start_fixity_run(
            conn, trigger=trigger, actor="service:archive", started_at=started
        )
        due = repository.records_due_for_fixity(
            conn, checked_before=started - timedelta(seconds=period_seconds), limit=batch_limit
        )
    for row in due:
        outcome = check_record_row(vault, row)
        summary.add(outcome)
        with engine.begin() as conn:
            record_fixity_outcome(conn, row, outcome, trigger=trigger, actor="service:archive", now=clock())
    summary.finished_at = clock()
    with engine.begin() as conn:
        repository.finish_fixity_run(conn, run_id, summary)
    if summary.failed:
        log.error("fixity sweep found %d of %d records altered or missing", summary.failed, summary.checked)
    else:
        log.info("fixity sweep checked %d records, all intact", summary.checked)
    return summary


# --- reads ----------------------------------------------------------------------------------------


@dataclass
class VerifiedContent:
    """The record's bytes, already re-hashed, in a temporary file the caller streams and closes."""

    record: dict[str, Any]
    file: IO[bytes]
    size: int

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        try:
            self.file.seek(0)
            while True:
                chunk = self.file.read(size)
                if not chunk:
                    return
                yield chunk
        finally:
            self.file.close()


def _audit_read(
    conn: Connection, row: Any, *, actor: str, action: str, now: datetime, details: dict[str, Any]
) -> None:
    audit_log.append(
        conn,
        AuditEvent(
            action=action,
            actor=actor,
            occurred_at=now,
            directive_id=row.directive_id,
            record_id=row.id,
            details={"filename": row.filename, "sha256": row.sha256, **details},
        ),
    )


def view_record(record_id: str, *, engine: Engine, actor: str, clock: Clock = utcnow) -> dict[str, Any]:
    """A record's metadata and signature report; the look is audited too."""
    with engine.begin() as conn:
        row = repository.get_record_row(conn, record_id)
        _audit_read(conn, row, actor=actor, action="record_viewed", now=clock(), details={})
    return repository.row_view(row)


def read_verified_content(
    record_id: str, *, engine: Engine, vault: Vault, actor: str, clock: Clock = utcnow
) -> VerifiedContent:
    """Spools the bytes while hashing them; only bytes that match the record ever leave this function."""
    with engine.connect() as conn:
        row = repository.get_record_row(conn, record_id)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by caller
    try:
        outcome = check_record_row(vault, row, sink=spool)
        now = clock()
        with engine.begin() as conn:
            if not outcome.ok:
                record_fixity_outcome(conn, row, outcome, trigger="read", actor=actor, now=now)
            else:
                repository.set_fixity(conn, row.id, ok=True, checked_at=now, detail="ok (on read)")
                _audit_read(conn, row, actor=actor, action="record_read", now=now, details={"size": row.size})
    except BaseException:
        spool.close()
        raise
    if not outcome.ok:
        spool.close()
        raise FixityFailed(record_id, f"record {record_id}: {outcome.detail}; the bytes were not served")
    return VerifiedContent(record=repository.row_view(row), file=spool, size=int(row.size))


def set_legal_hold(
    record_id: str,
    *,
    on: bool,
    reason: str | None,
    actor: str,
    engine: Engine,
    vault: Vault,
    clock: Clock = utcnow,
) -> dict[str, Any]:
    """Sets or lifts the hold on the object first (the store is the authority), then records and audits it."""
    with engine.connect() as conn:
        row = repository.get_record_row(conn, record_id)
    changed = change_legal_hold(repository.to_record(row), on=on, reason=reason)
    vault.store.set_legal_hold(row.bucket, row.key, on)
    with engine.begin() as conn:
        repository.set_legal_hold(conn, record_id, on=on, reason=changed.legal_hold_reason or "")
        audit_log.append(
            conn,
            AuditEvent(
                action="legal_hold_set" if on else "legal_hold_lifted",
                actor=actor,
                occurred_at=clock(),
                directive_id=row.directive_id,
                record_id=row.id,
                details={"reason": changed.legal_hold_reason, "was": bool(row.legal_hold)},
            ),
        )
        return repository.row_view(repository.get_record_row(conn, record_id))


# --- audit chain ----------------------------------------------------------------------------------


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
            _emit(
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
