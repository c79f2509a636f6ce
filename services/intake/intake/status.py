"""Closed-loop use cases: the statuses of a registration, a clerk's rejection, and routing's progress.

Intake owns what the sender is told. It writes 01 and 03 with the registration, 02 with a rejection, and
04, 05 and 06 while it consumes routing's task events (each claimed in the inbox, so a redelivered event
changes nothing); every status in the same transaction as what caused it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.inbox import claim
from shared.outbox import add_to_outbox
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from intake.adapters.status_store import (
    TASK_EVENT_STATUSES_POSTGRESQL,
    NewStatus,
    append_new_statuses,
    append_statuses,
    emitted_codes,
    lock_directive,
    statuses_param,
    task_states,
)
from intake.adapters.tables import directive_tasks, directives, inbox, outbox
from intake.domain.edxml import Attribution, Organ, StaffInfo
from intake.domain.enums import DirectiveStatus
from intake.domain.errors import (
    AttachmentTooLarge,
    DirectiveNotFound,
    IntakeError,
    InvalidAttachment,
    InvalidMetadata,
    LifecycleConflict,
    StateSecretRefused,
)
from intake.domain.models import Directive
from intake.domain.status import (
    ARRIVAL_PLACEHOLDER,
    LifecycleKind,
    OriginalDocument,
    StatusCode,
    TaskState,
    description,
    next_codes,
    progress_units,
    response_for,
    units_detail,
)
from intake.messages import EXCHANGE, SERVICE
from shared import json_bytes

log = logging.getLogger(__name__)

DIRECTIVE_REJECTED_TYPE = f"{SERVICE}.directive_rejected"
MAX_REASON = 2000
# Ranks break ties between two changes routing made in the same instant (an acknowledgement's steps).
_RANK = {"assigned": 0, "received": 1, "in_progress": 2, "rejected": 3, "completed": 4, "cancelled": 5}


class DirectiveCompleted(IntakeError):
    """The directive is already completed (06 sent): it can no longer be refused."""


class InvalidReason(IntakeError):
    field = "reason"


class InvalidTaskEvent(ValueError):
    """A routing event intake cannot read (a part missing or of the wrong kind): redelivering won't help."""


@dataclass(frozen=True)
class UnitContact:
    """A recipient unit as the statuses name it: its name and who answers for it (intake's own settings,
    see ClosedLoopSettings.unit_contacts; routing owns the units themselves)."""

    name: str
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Department:
    """Who the statuses come from: the department as an edXML organ, its desk's contact, and its units'."""

    organ: Organ
    desk: str = "Văn thư"
    mobile: str | None = None
    email: str | None = None
    units: Mapping[str, UnitContact] = field(default_factory=dict)

    @property
    def organ_id(self) -> str:
        """The department's own identifier (never empty: the organisation code when none is set)."""
        return self.organ.organ_id or self.organ.name or "docroute"

    def staff(self, *, person: str | None = None) -> StaffInfo:
        """The desk (văn thư) and its contact: statuses 01, 02, 03, 15 and 16."""
        return StaffInfo(department=self.desk, staff=person, mobile=self.mobile, email=self.email)

    def unit_staff(self, codes: Sequence[str], *, person: str | None = None) -> StaffInfo:
        """The unit(s) handling the directive (04, 05, 06): one unit with its own contact when it has one,
        several by name with the desk's contact (the desk coordinates them)."""
        if not codes:
            return self.staff(person=person)
        known = [self.units.get(code) for code in codes]
        names = ", ".join(unit.name if unit else code for unit, code in zip(known, codes, strict=True))
        only = known[0] if len(codes) == 1 else None
        return StaffInfo(
            department=names,
            staff=person or (only.staff if only else None),
            mobile=(only.mobile if only else None) or self.mobile,
            email=(only.email if only else None) or self.email,
        )


def original_of(directive: Directive) -> OriginalDocument:
    meta = directive.metadata
    return OriginalDocument(
        organ_id=meta.issuer.code,
        number=meta.number.display,
        code_number=meta.number.code_number,
        code_notation=meta.number.code_notation,
        issued_date=meta.issued_date,
        external_id=meta.external_id,
    )


def _original_of_row(row: RowMapping) -> OriginalDocument:
    return OriginalDocument(
        organ_id=row["issuer_code"],
        number=row["number"],
        code_number=row["code_number"],
        code_notation=row["code_notation"],
        issued_date=row["issued_date"],
        external_id=row["external_id"],
    )


def registration_statuses(directive: Directive, *, department: Department) -> tuple[NewStatus, ...]:
    """01 (arrived) and 03 (registered, with {arrival_number} to fill in) for a new directive."""
    response = response_for(original_of(directive), fallback_organ_id=department.organ_id)
    common = {
        "directive_id": directive.id,
        "occurred_at": directive.received_at,
        "response_for": response,
        "staff": department.staff(),
        "sender_code": directive.metadata.issuer.code,
        "submitted_by": directive.submitted_by,
    }
    return (
        NewStatus(
            status_code=StatusCode.RECEIVED.value, description=description(StatusCode.RECEIVED), **common
        ),
        NewStatus(
            status_code=StatusCode.REGISTERED.value,
            description=description(StatusCode.REGISTERED, arrival_number=ARRIVAL_PLACEHOLDER),
            **common,
        ),
    )


def _new_status(
    row: RowMapping,
    code: StatusCode,
    text: str,
    *,
    at: datetime,
    staff: StaffInfo,
    department: Department,
    dedupe_key: str | None = None,
) -> NewStatus:
    return NewStatus(
        directive_id=row["id"],
        status_code=code.value,
        description=text,
        occurred_at=at,
        response_for=response_for(_original_of_row(row), fallback_organ_id=department.organ_id),
        staff=staff,
        sender_code=row["issuer_code"],
        submitted_by=row["submitted_by"],
        dedupe_key=dedupe_key,
    )


@dataclass(frozen=True)
class Rejection:
    directive_id: str
    status: str
    created: bool


def reject_directive(
    directive_id: str,
    reason: str,
    *,
    engine: Engine,
    actor: str,
    department: Department,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Rejection:
    """A clerk refuses a directive: status 02 with the reason, and intake.directive_rejected.v1 for routing.

    Refusing it again answers the first refusal (nothing new is written); a completed one cannot be refused.
    """
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise InvalidReason("a reason is required")
    if len(cleaned) > MAX_REASON:
        raise InvalidReason(f"at most {MAX_REASON} characters")
    now = clock()
    with engine.begin() as conn:
        row = lock_directive(conn, directive_id)
        if row is None:
            raise DirectiveNotFound(f"no directive {directive_id}")
        emitted = emitted_codes(conn, directive_id)
        if StatusCode.REFUSED.value in emitted:
            return Rejection(directive_id, DirectiveStatus.REJECTED.value, created=False)
        if row["status"] != DirectiveStatus.REGISTERED.value:
            raise LifecycleConflict(f"directive {directive_id} is {row['status']}; it cannot be refused")
        if StatusCode.COMPLETED.value in emitted:
            raise DirectiveCompleted(f"directive {directive_id} is already completed; it cannot be refused")
        conn.execute(
            sa.update(directives)
            .where(directives.c.id == directive_id)
            .values(status=DirectiveStatus.REJECTED.value)
        )
        status = _new_status(
            row,
            StatusCode.REFUSED,
            description(StatusCode.REFUSED, detail=cleaned),
            at=now,
            staff=department.staff(person=actor),
            department=department,
        )
        append_statuses(conn, [status])
        add_to_outbox(
            conn,
            outbox,
            Envelope.new(
                DIRECTIVE_REJECTED_TYPE,
                {
                    "directive_id": directive_id,
                    "reason": cleaned,
                    "rejected_by": actor,
                    "rejected_at": now.isoformat(),
                },
                producer=SERVICE,
            ),
            exchange=EXCHANGE,
        )
    log.info("directive %s refused by %s", directive_id, actor)
    return Rejection(directive_id, DirectiveStatus.REJECTED.value, created=True)


# -- a revocation, update or replacement answered (15 / 16) ---------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def lifecycle_key(directive_id: str, code: StatusCode, kind: LifecycleKind, occasion: str | None) -> str:
    """15 / 16 are recorded once per directive, kind and occasion (e.g. the update packet's digest; none:
    once per directive and kind)."""
    key = f"{directive_id}:{code.value}:{kind.value}"
    return f"{key}:{_digest(occasion)}" if occasion else key


def lifecycle_status(
    directive: Directive,
    kind: LifecycleKind,
    *,
    accepted: bool,
    department: Department,
    at: datetime,
    reason: str | None = None,
    actor: str | None = None,
    occasion: str | None = None,
) -> NewStatus:
    """15 (accepted) or 16 (refused) for `directive`, answering a revocation, update or replacement, with
    the Vietnamese description ("Đồng ý lấy lại văn bản: …") and the desk's StaffInfo. Pure: hand it to
    DirectiveRepository.set_status(statuses=…) to record it in the change's own transaction."""
    code = StatusCode.CHANGE_ACCEPTED if accepted else StatusCode.CHANGE_REFUSED
    detail = " ".join((reason or "").split())[:MAX_REASON] or None
    return NewStatus(
        directive_id=directive.id,
        status_code=code.value,
        description=description(code, kind=kind, detail=detail),
        occurred_at=at,
        response_for=response_for(original_of(directive), fallback_organ_id=department.organ_id),
        staff=department.staff(person=actor),
        sender_code=directive.metadata.issuer.code,
        submitted_by=directive.submitted_by,
        dedupe_key=lifecycle_key(directive.id, code, kind, occasion),
    )


def record_lifecycle_status(
    engine: Engine,
    directive: Directive,
    kind: LifecycleKind,
    *,
    accepted: bool,
    department: Department,
    reason: str | None = None,
    actor: str | None = None,
    occasion: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> bool:
    """Records 15 / 16 in a transaction of its own (a refusal changes nothing else); answers whether it was
    written (False: recorded before). The one call a revocation, update or replacement makes to tell the
    sender; an accepted change that has a transaction of its own passes lifecycle_status(…) to it instead."""
    status = lifecycle_status(
        directive,
        kind,
        accepted=accepted,
        department=department,
        at=clock(),
        reason=reason,
        actor=actor,
        occasion=occasion,
    )
    with engine.begin() as conn:
        # The directive's lock orders this writer with the others (directive, then the cursor row).
        if lock_directive(conn, directive.id) is None:
            raise DirectiveNotFound(f"no directive {directive.id}")
        return append_new_statuses(conn, [status]) == 1


# -- a refused edXML packet (02 with no directive) ----------------------------------------------------


def refusal_key(sender_code: str, document_id: str, reason: str) -> str:
    """A refused packet is recorded once per sender, DocumentId and reason: the same packet sent again and
    refused again for the same reason is not a new status."""
    return f"refused:{_digest(sender_code + chr(0) + document_id)}:{_digest(reason)}"


def packet_refusal_reason(exc: IntakeError) -> str:
    """Why a packet was refused, in Vietnamese for the sender, with the part it is about and intake's own
    message (which names it precisely) after it."""
    where = exc.field or ""
    if isinstance(exc, StateSecretRefused):
        why = "văn bản mật không được gửi, nhận qua hệ thống kết nối Internet"
    elif where == "Signature":
        why = "chữ ký số của gói tin không hợp lệ hoặc không có"
    elif isinstance(exc, AttachmentTooLarge):
        why = "tệp đính kèm vượt quá dung lượng cho phép"
    elif isinstance(exc, InvalidAttachment) or where in ("edXMLManifest", "AttachmentEncoded"):
        why = "tệp đính kèm thiếu hoặc không hợp lệ"
    elif isinstance(exc, InvalidMetadata):
        why = "văn bản không đúng thể thức, kỹ thuật trình bày theo Nghị định 30/2020/NĐ-CP"
    else:
        why = "gói tin edXML không đúng QCVN 102:2016/BTTTT"
    message = " ".join(str(exc).split())[:500]
    return f"{why} ({where}: {message})" if where else f"{why} ({message})"


def record_packet_refusal(
    engine: Engine,
    attribution: Attribution,
    reason: str,
    *,
    department: Department,
    submitted_by: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> bool:
    """Status 02 for a packet intake refused but can attribute (its From/OrganId and DocumentId were
    readable): nothing else is stored and no directive is made. The status has no directive id; it is
    addressed by its sender (`sender`, for webhook `senders` filters) and ResponseFor/DocumentId, and the
    submitter that posted it sees it in its feed. Answers whether it was written (False: recorded before).
    """
    detail = " ".join(reason.split())[:MAX_REASON] or None
    status = NewStatus(
        directive_id=None,
        status_code=StatusCode.REFUSED.value,
        description=description(StatusCode.REFUSED, detail=detail),
        occurred_at=clock(),
        response_for=attribution.response_for,
        staff=department.staff(),
        sender_code=attribution.organ_id,
        submitted_by=submitted_by,
        dedupe_key=refusal_key(attribution.organ_id, attribution.document_id, detail or ""),
    )
    try:
        with engine.begin() as conn:
            written = append_new_statuses(conn, [status]) == 1
    except IntegrityError:
        # The same refusal recorded meanwhile by another request (the key is unique): nothing new.
        return False
    if written:
        log.info(
            "refused packet %s from %s: status 02 recorded", attribution.document_id, attribution.organ_id
        )
    return written


# -- routing's progress ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskObservation:
    """One thing routing said about a task: its status as of `changed_at`."""

    task_id: str
    directive_id: str
    unit: str
    role: str
    status: str
    changed_at: datetime
    actor: str | None = None


def _timestamp(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return fallback


def _from_document(doc: Mapping[str, Any], fallback: datetime) -> TaskObservation:
    return TaskObservation(
        task_id=str(doc["id"]),
        directive_id=str(doc["directive_id"]),
        unit=str(doc["unit"]),
        role=str(doc["role"]),
        status=str(doc["status"]),
        changed_at=_timestamp(doc.get("updated_at") or doc.get("created_at"), fallback),
    )


def _from_change(change: Mapping[str, Any], fallback: datetime) -> TaskObservation:
    return TaskObservation(
        task_id=str(change["task_id"]),
        directive_id=str(change["directive_id"]),
        unit=str(change["unit"]),
        role=str(change["role"]),
        status=str(change["status"]),
        changed_at=_timestamp(change.get("changed_at"), fallback),
        actor=change.get("actor"),
    )


def observations(envelope: Envelope) -> list[TaskObservation]:
    """What one of routing's task events says about its tasks; InvalidTaskEvent when it cannot be read."""
    try:
        return _observations(envelope)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidTaskEvent(f"{envelope.type} {envelope.id} lacks {exc}") from exc


def _observations(envelope: Envelope) -> list[TaskObservation]:
    payload = envelope.payload
    fallback = envelope.occurred_at if isinstance(envelope.occurred_at, datetime) else datetime.now(UTC)
    kind = envelope.type
    if kind == "routing.tasks_assigned":
        return [_from_document(doc, fallback) for doc in payload["tasks"]]
    if kind == "routing.task_assigned":
        return [_from_document(payload, fallback)]
    if kind == "routing.tasks_acknowledged":
        return [_from_change(change, fallback) for change in payload["changes"]]
    if kind == "routing.task_status_changed":
        return [_from_change(payload, fallback)]
    return []


_SELECT_TASKS = sa.select(directive_tasks).where(
    directive_tasks.c.task_id.in_(sa.bindparam("p_ids", expanding=True))
)
_UPDATE_TASK = (
    sa.update(directive_tasks)
    .where(directive_tasks.c.task_id == sa.bindparam("p_task_id"))
    .values(
        unit=sa.bindparam("p_unit"),
        role=sa.bindparam("p_role"),
        status=sa.bindparam("p_status"),
        started=sa.bindparam("p_started"),
        changed_at=sa.bindparam("p_changed_at"),
    )
)


def _merged(current: Mapping[str, Any] | None, seen: TaskObservation) -> dict[str, Any]:
    """The task's row once `seen` is applied to what intake knew (`current`, None: nothing yet)."""
    started = seen.status in ("in_progress", "completed")
    fresh = {
        "task_id": seen.task_id,
        "directive_id": seen.directive_id,
        "unit": seen.unit,
        "role": seen.role,
        "status": seen.status,
        "started": started,
        "changed_at": seen.changed_at,
    }
    if current is None:
        return fresh
    known = current["changed_at"]
    known = known if known.tzinfo is not None else known.replace(tzinfo=UTC)
    newer = seen.changed_at > known or (
        seen.changed_at == known and _RANK.get(seen.status, 0) >= _RANK.get(current["status"], 0)
    )
    merged = dict(fresh if newer else current)
    merged["started"] = bool(current["started"]) or started
    return merged


def _record(conn: sa.Connection, seen: list[TaskObservation]) -> None:
    """Applies the observations to intake's copy of the tasks: one read of the rows they name, one
    multi-row INSERT for the tasks new to intake, the changed rows updated in one executemany."""
    ids = list(dict.fromkeys(item.task_id for item in seen))
    known = {row["task_id"]: row for row in conn.execute(_SELECT_TASKS, {"p_ids": ids}).mappings()}
    rows: dict[str, dict[str, Any]] = {}
    for item in seen:
        rows[item.task_id] = _merged(rows.get(item.task_id, known.get(item.task_id)), item)
    new = [row for task_id, row in rows.items() if task_id not in known]
    changed = [
        {f"p_{name}": value for name, value in row.items() if name != "directive_id"}
        for task_id, row in rows.items()
        if task_id in known
    ]
    if new:
        conn.execute(sa.insert(directive_tasks), new)
    if changed:
        conn.execute(_UPDATE_TASK, changed)


def _progress_text(code: StatusCode, tasks: list[TaskState]) -> str:
    return description(code, detail=units_detail(tasks))


def apply_task_event(
    envelope: Envelope,
    *,
    engine: Engine,
    consumer: str,
    department: Department,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[str]:
    """Applies one routing task event; answers the status codes it emitted (none for a duplicate)."""
    seen = observations(envelope)
    by_directive: dict[str, list[TaskObservation]] = {}
    for item in seen:
        by_directive.setdefault(item.directive_id, []).append(item)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            return _apply_postgresql(conn, envelope, by_directive, consumer, department, clock)
        if not claim(conn, inbox, envelope.id, consumer):
            return []
        emitted_now: list[str] = []
        # One lock order for every writer: directives by id, then the cursor row.
        for directive_id in sorted(by_directive):
            row = lock_directive(conn, directive_id)
            if row is None:
                log.warning("routing event %s names unknown directive %s", envelope.id, directive_id)
                continue
            _record(conn, by_directive[directive_id])
            tasks = task_states(conn, directive_id)
            statuses = _progress_statuses(
                row, by_directive[directive_id], tasks, emitted_codes(conn, directive_id), department, clock
            )
            append_statuses(conn, statuses)
            emitted_now.extend(status.status_code for status in statuses)
    return emitted_now


def _progress_statuses(
    row: RowMapping,
    seen: Sequence[TaskObservation],
    tasks: list[TaskState],
    emitted: Iterable[str],
    department: Department,
    clock: Callable[[], datetime],
) -> list[NewStatus]:
    """The progress statuses (04, 05, 06) a directive's tasks call for now and that are not emitted yet."""
    codes = next_codes(emitted, tasks)
    if not codes:
        return []
    actors = [item.actor for item in seen if item.actor]
    # When routing made the change that called for the status, not when intake got to it.
    now = max((item.changed_at for item in seen), default=clock())
    return [
        _new_status(
            row,
            code,
            _progress_text(code, tasks),
            at=now,
            staff=department.unit_staff(progress_units(code, tasks), person=actors[-1] if actors else None),
            department=department,
        )
        for code in codes
    ]


# PostgreSQL: a task event is three statements, where the portable path above takes eight or more (the
# claim, the directive's lock, reads and writes of its tasks and statuses, one at a time).
#  1. The inbox claim and the directives' locks, in id order (the order every writer takes them in). The
#     claim comes first; a duplicate answers no row and locks nothing, an event naming no known directive
#     one row with a NULL id.
_CLAIM_AND_LOCK = sa.text(
    "WITH claimed AS (INSERT INTO inbox (message_id, consumer, processed_at) "
    "VALUES (:message_id, :consumer, :processed_at) ON CONFLICT DO NOTHING RETURNING 1 AS claimed), "
    "locked AS (SELECT d.* FROM directives AS d WHERE d.id = ANY(CAST(:ids AS text[])) "
    "AND EXISTS (SELECT FROM claimed) ORDER BY d.id FOR UPDATE) "
    "SELECT locked.* FROM claimed LEFT JOIN locked ON true"
)
#  2. Once they are locked (a statement of its own, so that it sees what the previous holder of a lock
#     committed): the tasks intake knows of those directives or of the tasks named, and the directives'
#     emitted status codes (rows with a NULL task_id, the code as their status).
_TASKS_AND_CODES = sa.text(
    "SELECT task_id, directive_id, unit, role, status, started, changed_at FROM directive_tasks "
    "WHERE directive_id = ANY(CAST(:ids AS text[])) OR task_id = ANY(CAST(:task_ids AS text[])) "
    "UNION ALL SELECT NULL, directive_id, NULL, NULL, status_code, NULL, NULL FROM status_updates "
    "WHERE directive_id = ANY(CAST(:ids AS text[]))"
)
#  3. The tasks' rows as merged here (one UPSERT from a JSON parameter) and, when some are due, the
#     statuses, whose cursor is taken after the tasks are written.
_UPSERT_TASKS = (
    "WITH upserted AS (INSERT INTO directive_tasks AS t "
    "SELECT r.* FROM json_populate_recordset(NULL::directive_tasks, CAST(:tasks AS json)) AS r "
    "ON CONFLICT (task_id) DO UPDATE SET unit = excluded.unit, role = excluded.role, "
    "status = excluded.status, started = excluded.started, changed_at = excluded.changed_at "
    "RETURNING 1)"
)
_WRITE_ANSWER = "\nSELECT count(*) FROM upserted"
_WRITE_TASKS = sa.text(_UPSERT_TASKS + _WRITE_ANSWER)
_WRITE_TASKS_AND_STATUSES = sa.text(_UPSERT_TASKS + ",\n" + TASK_EVENT_STATUSES_POSTGRESQL + _WRITE_ANSWER)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json_text(value: Any) -> str:
    return json_bytes.dumps(value, default=_json_default).decode("utf-8")


def _apply_postgresql(
    conn: sa.Connection,
    envelope: Envelope,
    by_directive: Mapping[str, list[TaskObservation]],
    consumer: str,
    department: Department,
    clock: Callable[[], datetime],
) -> list[str]:
    """apply_task_event on PostgreSQL in three statements (see above), by the same rules as the portable
    path: the newer change wins, `started` is never lost, each code once and in order."""
    ids = sorted(by_directive)
    answer = conn.execute(
        _CLAIM_AND_LOCK,
        {"message_id": envelope.id, "consumer": consumer, "processed_at": datetime.now(UTC), "ids": ids},
    ).mappings()
    claimed = False
    rows: dict[str, RowMapping] = {}
    for row in answer:
        claimed = True
        if row["id"] is not None:
            rows[row["id"]] = row
    if not claimed:
        return []  # a duplicate: claimed in the inbox already
    for directive_id in ids:
        if directive_id not in rows:
            log.warning("routing event %s names unknown directive %s", envelope.id, directive_id)
    if not rows:
        return []
    named = [item.task_id for directive_id in rows for item in by_directive[directive_id]]
    known: dict[str, dict[str, Any]] = {}
    emitted: dict[str, list[str]] = {directive_id: [] for directive_id in rows}
    for read in conn.execute(_TASKS_AND_CODES, {"ids": list(rows), "task_ids": named}).mappings():
        if read["task_id"] is None:
            emitted[read["directive_id"]].append(read["status"])
        else:
            known[read["task_id"]] = dict(read)
    written: dict[str, dict[str, Any]] = {}
    for directive_id in rows:
        for item in by_directive[directive_id]:
            current = written.get(item.task_id, known.get(item.task_id))
            merged = _merged(current, item)
            if current is not None:
                merged["directive_id"] = current["directive_id"]  # an update keeps the task's directive
            written[item.task_id] = merged
    tasks_now = {**known, **written}
    statuses: list[NewStatus] = []
    for directive_id, row in rows.items():
        tasks = [
            TaskState(
                task_id=task["task_id"],
                unit=task["unit"],
                role=task["role"],
                status=task["status"],
                started=bool(task["started"]),
            )
            for task in tasks_now.values()
            if task["directive_id"] == directive_id
        ]
        statuses.extend(
            _progress_statuses(
                row, by_directive[directive_id], tasks, emitted[directive_id], department, clock
            )
        )
    params: dict[str, Any] = {"tasks": _json_text(list(written.values()))}
    if statuses:
        params["statuses"] = _json_text(statuses_param(statuses))
        params["status_count"] = len(statuses)
    conn.execute(_WRITE_TASKS_AND_STATUSES if statuses else _WRITE_TASKS, params)
    return [status.status_code for status in statuses]


def consumed_queues() -> Iterable[tuple[str, str]]:
    """(source, event) pairs intake consumes: routing's task events."""
    return (
        ("routing", "tasks_assigned"),
        ("routing", "task_assigned"),
        ("routing", "tasks_acknowledged"),
        ("routing", "task_status_changed"),
    )
