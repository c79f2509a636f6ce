"""Outgoing document status (QCVN 102 status codes): which statuses a directive's progress calls for.

Pure: the repository hands in what is already emitted and what routing told intake about the tasks,
and gets back the codes to emit now, in order. Every code is emitted once per directive, and a later code
brings the earlier ones it implies with it (a chủ trì task that jumps straight to done yields 05, then 06).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from intake.domain.arrival import BUSINESS_TZ
from intake.domain.edxml import Code, Organ, ResponseFor, StaffInfo, StatusPacket, document_id, write_status
from intake.domain.enums import DirectiveStatus


class StatusCode(StrEnum):
    """The edXML StatusCode values docroute sends (QCVN 102, as the national exchange uses them)."""

    RECEIVED = "01"  # đã đến
    REFUSED = "02"  # từ chối tiếp nhận
    REGISTERED = "03"  # đã tiếp nhận (vào sổ)
    ASSIGNED = "04"  # phân công
    IN_PROGRESS = "05"  # đang xử lý
    COMPLETED = "06"  # hoàn thành
    CHANGE_ACCEPTED = "15"  # đồng ý lấy lại / cập nhật / thay thế
    CHANGE_REFUSED = "16"  # từ chối lấy lại / cập nhật / thay thế


class LifecycleKind(StrEnum):
    """What a sender asked of a document it sent (BussinessDocType 1, 2, 3); answered with 15 or 16."""

    REVOCATION = "revocation"  # thu hồi (lấy lại)
    UPDATE = "update"  # cập nhật
    REPLACEMENT = "replacement"  # thay thế


# The object of 15 / 16 in the Vietnamese description: "Đồng ý lấy lại văn bản", "Từ chối cập nhật văn bản".
_LIFECYCLE_VERB = {
    LifecycleKind.REVOCATION: "lấy lại",
    LifecycleKind.UPDATE: "cập nhật",
    LifecycleKind.REPLACEMENT: "thay thế",
}


# The progress codes in the order a sender must see them; a directive refused (02) gets none of them after.
PROGRESS = (StatusCode.ASSIGNED, StatusCode.IN_PROGRESS, StatusCode.COMPLETED)
CHU_TRI = "chu_tri"
ARRIVAL_PLACEHOLDER = "{arrival_number}"

# Routing's task statuses, as its events name them.
STARTED = frozenset({"in_progress", "completed"})
DONE = "completed"
CANCELLED = "cancelled"


def description(
    code: StatusCode,
    *,
    arrival_number: int | str | None = None,
    detail: str | None = None,
    kind: LifecycleKind | None = None,
) -> str:
    """The Vietnamese description a sender reads for `code` (`detail` adds units or the reason; `kind`
    says what 15 / 16 answer)."""
    if code in (StatusCode.CHANGE_ACCEPTED, StatusCode.CHANGE_REFUSED):
        if kind is None:
            raise ValueError(
                f"status {code.value} answers a revocation, update or replacement: give its kind"
            )
        verb = "Đồng ý" if code is StatusCode.CHANGE_ACCEPTED else "Từ chối"
        text = f"{verb} {_LIFECYCLE_VERB[kind]} văn bản"
        return f"{text}: {detail}" if detail else text
    text = {
        StatusCode.RECEIVED: "Văn bản đã đến, văn thư chưa xử lý",
        StatusCode.REFUSED: "Từ chối tiếp nhận văn bản",
        StatusCode.REGISTERED: f"Đã tiếp nhận, vào sổ văn bản đến số {arrival_number}",
        StatusCode.ASSIGNED: "Đã phân công xử lý",
        StatusCode.IN_PROGRESS: "Đơn vị chủ trì đang xử lý",
        StatusCode.COMPLETED: "Đã hoàn thành xử lý",
    }[code]
    return f"{text}: {detail}" if detail else text


# Why a revocation, update or replacement is refused (16), by the directive's state.
_STATE_REASON = {
    DirectiveStatus.REVOKED: "văn bản đã được thu hồi",
    DirectiveStatus.REPLACED: "văn bản đã được thay thế bằng văn bản khác",
    DirectiveStatus.REJECTED: "văn bản đã bị từ chối tiếp nhận",
}


def state_refusal_reason(state: DirectiveStatus) -> str:
    """The Vietnamese reason a change cannot be made to a directive in `state` (16's description)."""
    return _STATE_REASON.get(state, f"văn bản đang ở trạng thái {state.value}")


@dataclass(frozen=True)
class TaskState:
    """What intake knows of one routing task: its unit, role, status, and whether it was ever started."""

    task_id: str
    unit: str
    role: str
    status: str
    started: bool = False


def chu_tri(tasks: Iterable[TaskState]) -> list[TaskState]:
    return [task for task in tasks if task.role == CHU_TRI]


def next_codes(emitted: Iterable[str], tasks: Sequence[TaskState]) -> list[StatusCode]:
    """The progress codes due now and not yet emitted, in order.

    04 once a chủ trì task exists (not cancelled); 05 once one was in progress or done; 06 once every
    chủ trì task that is not cancelled is done. A code implies those before it, so a missing earlier code
    comes first. Nothing follows a refusal (02).
    """
    sent = set(emitted)
    if StatusCode.REFUSED in sent:
        return []
    live = [task for task in chu_tri(tasks) if task.status != CANCELLED]
    due: StatusCode | None = None
    if live:
        due = StatusCode.ASSIGNED
        if any(task.started or task.status in STARTED for task in live):
            due = StatusCode.IN_PROGRESS
        if all(task.status == DONE for task in live):
            due = StatusCode.COMPLETED
    if due is None:
        return []
    return [code for code in PROGRESS[: PROGRESS.index(due) + 1] if code not in sent]


def units_detail(tasks: Sequence[TaskState]) -> str | None:
    """The chủ trì units named in a progress description (sorted, so the text is stable)."""
    units = sorted({task.unit for task in chu_tri(tasks) if task.status != CANCELLED})
    return ", ".join(units) if units else None


def progress_units(code: StatusCode, tasks: Sequence[TaskState]) -> list[str]:
    """The units a progress status speaks for (its StaffInfo): for 05 the chủ trì units that started,
    otherwise every chủ trì unit not cancelled; sorted."""
    live = [task for task in chu_tri(tasks) if task.status != CANCELLED]
    if code is StatusCode.IN_PROGRESS:
        started = [task for task in live if task.started or task.status in STARTED]
        live = started or live
    return sorted({task.unit for task in live})


@dataclass(frozen=True)
class OriginalDocument:
    """What a status names the sender's document by (QCVN 102 ResponseFor)."""

    organ_id: str | None
    number: str
    code_number: str
    code_notation: str
    issued_date: date
    external_id: str | None = None


def composed_document_id(original: OriginalDocument, *, fallback_organ_id: str) -> str:
    """The original's DocumentId: the packet's own when it came as one, else composed as QCVN 102 does,
    `OrganId,yyyy/MM/dd,number/notation`. An issuer without an agency identifier (a REST submission that
    named its issuer only) is never composed with an empty OrganId: `fallback_organ_id`, the receiving
    department's own identifier, stands in, so the id stays unique within the department and parseable."""
    if original.external_id:
        return original.external_id
    code = Code(number=original.code_number, notation=original.code_notation)
    return document_id(original.organ_id or fallback_organ_id, original.issued_date, code)


def response_for(original: OriginalDocument, *, fallback_organ_id: str) -> ResponseFor:
    """ResponseFor naming the original: OrganId only when the issuer has one (an unknown issuer is not
    given the department's identifier), DocumentId always (see composed_document_id)."""
    code = Code(number=original.code_number, notation=original.code_notation)
    composed = composed_document_id(original, fallback_organ_id=fallback_organ_id)
    return ResponseFor(
        organ_id=original.organ_id,
        code=code.full,
        promulgation_date=original.issued_date,
        document_id=composed,
    )


def status_packet(
    *,
    sender: Organ,
    response: ResponseFor,
    code: str,
    text: str,
    occurred_at: datetime,
    staff: StaffInfo | None,
) -> str:
    """The strict QCVN 102 status packet as an XML string (UTF-8)."""
    return write_status(
        StatusPacket(
            sender=sender,
            response_for=response,
            status_code=code,
            description=text,
            # The packet's Timestamp is wall time where the department is, as the exchange expects.
            timestamp=occurred_at.astimezone(BUSINESS_TZ).replace(tzinfo=None),
            staff=staff,
        )
    ).decode("utf-8")
