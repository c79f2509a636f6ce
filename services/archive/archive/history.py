"""A directive's history: routing's task events and intake's lifecycle events (revocation, update,
replacement), with any file they carry archived."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, Unpack

from shared.envelope import Envelope
from shared.filenames import clean_filename
from shared.inbox import claim
from shared.messaging import PermanentError
from sqlalchemy.engine import Engine

from archive import messages
from archive.adapters import audit_log, repository
from archive.adapters.db import inbox
from archive.adapters.repository import DocumentContext
from archive.archiving import IncomingDocument, Prepared, Refusal, prepare, refusal_events, store_records
from archive.common import (
    CONSUMER,
    Clock,
    Vault,
    already_handled,
    load_or_reject,
    rejecting_malformed,
    utcnow,
)
from archive.domain.audit import AuditEvent
from archive.domain.errors import ChecksumMismatch
from archive.domain.records import SOURCE_ATTACHMENT, SOURCE_REPORT, SOURCE_REVOCATION, SOURCE_UPDATE
from archive.signatures import SignatureVerifier


class HistoryDeps(TypedDict):
    """What the handlers of a directive's history work with (the clock is utcnow unless given)."""

    engine: Engine
    vault: Vault
    verifier: SignatureVerifier
    clock: NotRequired[Clock]


# The event types under which a batch event's parts are kept, as if each had come on its own.
TASK_ASSIGNED_TYPE = ".".join(messages.TASK_ASSIGNED)
TASK_STATUS_CHANGED_TYPE = ".".join(messages.TASK_STATUS_CHANGED)


def handle_task_event(envelope: Envelope, **deps: Unpack[HistoryDeps]) -> list[str]:
    """Keeps a routing task event in the history and the audit log; archives a report file it carries."""
    payload = load_or_reject(messages.TaskEventIn(), envelope)
    task_id = payload.get("task_id") or payload.get("id")
    report = payload.get("report")
    unit = payload.get("unit") or payload.get("unit_code")
    status = payload.get("status") or payload.get("to_status")
    return _keep(
        envelope,
        payload["directive_id"],
        files=[_File(report, SOURCE_REPORT, f"report:{task_id or ''}:{report['sha256']}")] if report else [],
        row={"task_id": task_id, "unit": unit, "status": status},
        details={"task_id": task_id, "unit": unit, "status": status, "report": _report_details(report)},
        **deps,
    )


def handle_directive_revoked(envelope: Envelope, **deps: Unpack[HistoryDeps]) -> list[str]:
    """Keeps intake's revocation of a directive in its history and the audit log; every record stays (WORM),
    and the revoking edXML packet, when there was one, is archived beside them."""
    payload = load_or_reject(messages.DirectiveRevokedIn(), envelope)
    directive_id = payload["directive_id"]
    packet = payload.get("packet")
    return _keep(
        envelope,
        directive_id,
        files=[_File(packet, SOURCE_REVOCATION, f"revocation:{directive_id}:{packet['sha256']}")]
        if packet
        else [],
        row=_directive_row("revoked"),
        details={
            "reason": payload["reason"],
            "revoked_by": payload.get("revoked_by"),
            "revoked_at": payload.get("revoked_at"),
            "packet": _report_details(packet),
        },
        **deps,
    )


def handle_directive_updated(envelope: Envelope, **deps: Unpack[HistoryDeps]) -> list[str]:
    """Keeps a directive's new revision in its history and the audit log (what changed, from what to what,
    who asked and why); archives the files it added and the update packet beside the earlier records,
    which stay as they are (WORM)."""
    payload = load_or_reject(messages.DirectiveUpdatedIn(), envelope)
    directive_id = payload["directive_id"]
    revision = payload["revision"]
    packet = payload.get("packet")
    files = [
        _File(added, SOURCE_ATTACHMENT, f"revision:{revision}:{added['id']}")
        for added in payload["attachments_added"]
    ]
    if packet:
        files.append(_File(packet, SOURCE_UPDATE, f"update:{directive_id}:{revision}:{packet['sha256']}"))
    return _keep(
        envelope,
        directive_id,
        files=files,
        row=_directive_row(f"revision {revision}"),
        details={
            "revision": revision,
            "changes": payload["changes"],
            "reason": payload.get("reason"),
            "updated_by": payload.get("updated_by"),
            "updated_at": payload.get("updated_at"),
            "attachments_added": [_report_details(added) for added in payload["attachments_added"]],
            "packet": _report_details(packet),
        },
        **deps,
    )


def handle_directive_replaced(envelope: Envelope, **deps: Unpack[HistoryDeps]) -> list[str]:
    """Keeps a directive's replacement in its history and the audit log, naming the new directive (which is
    archived from its own registration); the replaced one's records stay as they are (WORM)."""
    payload = load_or_reject(messages.DirectiveReplacedIn(), envelope)
    return _keep(
        envelope,
        payload["directive_id"],
        files=[],
        row=_directive_row("replaced"),
        details={
            "replacement": payload["replacement"],
            "reason": payload["reason"],
            "replaced_by": payload.get("replaced_by"),
            "replaced_at": payload.get("replaced_at"),
        },
        **deps,
    )


def _directive_row(status: str) -> dict[str, Any]:
    """The history row of an event of the directive itself, not of one of its tasks."""
    return {"task_id": None, "unit": None, "status": status}


@dataclass(frozen=True)
class _File:
    """A file an event carries: its staged copy's description, the kind of record and its source_ref."""

    file: dict[str, Any]
    source_kind: str
    source_ref: str


def _keep(
    envelope: Envelope,
    directive_id: str,
    *,
    files: list[_File],
    row: dict[str, Any],
    details: dict[str, Any],
    engine: Engine,
    vault: Vault,
    verifier: SignatureVerifier,
    clock: Clock = utcnow,
) -> list[str]:
    """One event of a directive's life: a history row, an audit entry, and the files it carries archived."""
    if already_handled(engine, envelope.id):
        return []
    with engine.connect() as conn:
        directive = repository.get_directive(conn, directive_id)
    metadata = dict(directive.metadata) if directive is not None else {}
    now = clock()
    prepared: list[Prepared] = []
    refused: list[Refusal] = []
    if files:
        docs = [
            IncomingDocument(
                source_ref=item.source_ref,
                source_kind=item.source_kind,
                filename=clean_filename(item.file["filename"]),
                filename_as_sent=item.file["filename"],
                content_type=item.file["content_type"],
                size=item.file["size"],
                sha256=item.file["sha256"],
                bucket=item.file["bucket"],
                key=item.file["key"],
                document_type=None,
            )
            for item in files
        ]
        try:
            prepared, refused = prepare(vault, verifier, directive_id, docs, now)
        except ChecksumMismatch as exc:
            kinds = "/".join(sorted({item.source_kind for item in files}))
            raise PermanentError(f"{kinds} file of directive {directive_id}: {exc}") from exc
    event_name = envelope.type.split(".", 1)[-1]
    with engine.begin() as conn:
        if not claim(conn, inbox, envelope.id, CONSUMER):
            return []
        repository.insert_task_event(
            conn,
            {
                "event_id": envelope.id,
                "event_type": envelope.type,
                "directive_id": directive_id,
                **row,
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
                details=details,
            )
        ]
        created = store_records(
            conn, envelope, directive_id, prepared, DocumentContext.from_metadata(metadata), vault, now, audit
        )
        audit.extend(refusal_events(envelope, directive_id, refused, now))
        audit_log.append_many(conn, audit)
        return created


def _report_details(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report as the audit entry keeps it: its name cleaned as the record's is, the raw one beside it."""
    if not report:
        return report
    cleaned = clean_filename(report["filename"])
    if cleaned == report["filename"]:
        return report
    return {**report, "filename": cleaned, "filename_as_sent": report["filename"]}


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
    with rejecting_malformed(envelope):
        payload = messages.load_payload(messages.TasksAssignedIn(), envelope)
        tasks = [(doc, messages.AssignedTaskIn().load(doc)) for doc in payload["tasks"]]
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
    with rejecting_malformed(envelope):
        payload = messages.load_payload(messages.TasksAcknowledgedIn(), envelope)
        changes = [(doc, messages.StatusChangeIn().load(doc)) for doc in payload["changes"]]
    facts = [
        _TaskFact(change["directive_id"], change["task_id"], change["unit"], change["status"], doc)
        for doc, change in changes
    ]
    return _record_task_facts(
        envelope, facts, engine=engine, event_type=TASK_STATUS_CHANGED_TYPE, action="task_status_changed"
    )
