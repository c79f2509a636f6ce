"""Which statuses a directive's progress calls for (pure): order, once each, chủ trì only."""

from __future__ import annotations

from datetime import UTC, date, datetime

from intake.domain.edxml import Organ, StaffInfo, read_status
from intake.domain.enums import DirectiveStatus
from intake.domain.status import (
    LifecycleKind,
    OriginalDocument,
    StatusCode,
    TaskState,
    description,
    next_codes,
    progress_units,
    response_for,
    state_refusal_reason,
    status_packet,
)

DEPT = "000.00.12.H10"


def task(task_id: str, status: str, *, role: str = "chu_tri", started: bool = False) -> TaskState:
    return TaskState(task_id=task_id, unit=f"U{task_id}", role=role, status=status, started=started)


SENT = ["01", "03"]


def test_nothing_before_a_chu_tri_task_exists() -> None:
    assert next_codes(SENT, []) == []
    assert next_codes(SENT, [task("1", "assigned", role="phoi_hop")]) == []


def test_assigned_when_the_chu_tri_task_is_created() -> None:
    assert next_codes(SENT, [task("1", "assigned"), task("2", "assigned", role="phoi_hop")]) == ["04"]


def test_a_task_jumping_straight_to_done_yields_05_before_06() -> None:
    assert next_codes(SENT, [task("1", "completed")]) == ["04", "05", "06"]
    assert next_codes([*SENT, "04"], [task("1", "completed")]) == ["05", "06"]


def test_05_once_any_chu_tri_task_started_06_only_when_all_done() -> None:
    tasks = [task("1", "in_progress"), task("2", "assigned")]
    assert next_codes([*SENT, "04"], tasks) == ["05"]
    assert next_codes([*SENT, "04", "05"], tasks) == []
    done_one = [task("1", "completed"), task("2", "received")]
    assert next_codes([*SENT, "04", "05"], done_one) == []
    assert next_codes([*SENT, "04", "05"], [task("1", "completed"), task("2", "completed")]) == ["06"]


def test_a_task_started_earlier_still_counts_when_last_seen_otherwise() -> None:
    # Moved back to assigned by a clerk after it was in progress: 05 already became true.
    assert next_codes([*SENT, "04"], [task("1", "assigned", started=True)]) == ["05"]


def test_cancelled_chu_tri_tasks_are_ignored() -> None:
    tasks = [task("1", "completed"), task("2", "cancelled")]
    assert next_codes([*SENT, "04", "05"], tasks) == ["06"]
    # Only cancelled ones: nothing is due, not even 04.
    assert next_codes(SENT, [task("2", "cancelled")]) == []


def test_phoi_hop_tasks_do_not_complete_a_directive() -> None:
    tasks = [task("1", "in_progress"), task("2", "completed", role="phoi_hop")]
    assert next_codes([*SENT, "04", "05"], tasks) == []


def test_each_code_once_and_nothing_after_a_refusal() -> None:
    everything = [*SENT, "04", "05", "06"]
    assert next_codes(everything, [task("1", "completed")]) == []
    assert next_codes([*SENT, "02"], [task("1", "completed")]) == []


def test_descriptions_are_vietnamese() -> None:
    assert description(StatusCode.REGISTERED, arrival_number=12) == "Đã tiếp nhận, vào sổ văn bản đến số 12"
    assert (
        description(StatusCode.REFUSED, detail="Sai thẩm quyền")
        == "Từ chối tiếp nhận văn bản: Sai thẩm quyền"
    )


def test_response_for_composes_the_document_id_of_a_rest_directive() -> None:
    original = OriginalDocument(
        organ_id="000.00.00.G22",
        number="1393/CVT-CL",
        code_number="1393",
        code_notation="CVT-CL",
        issued_date=date(2021, 4, 12),
    )
    found = response_for(original, fallback_organ_id=DEPT)
    assert found.document_id == "000.00.00.G22,2021/04/12,1393/CVT-CL"
    assert found.code == "1393/CVT-CL"
    assert found.promulgation_date == date(2021, 4, 12)


def test_response_for_keeps_the_packet_document_id() -> None:
    original = OriginalDocument(
        organ_id="000.00.00.H10",
        number="171-CV/BTGTU",
        code_number="171",
        code_notation="CV/BTGTU",
        issued_date=date(2021, 4, 9),
        external_id="000.00.00.H10,2021/04/09,171-CV/BTGTU",
    )
    assert (
        response_for(original, fallback_organ_id=DEPT).document_id == "000.00.00.H10,2021/04/09,171-CV/BTGTU"
    )
    assert response_for(original, fallback_organ_id=DEPT).code == "171-CV/BTGTU"


def test_a_status_packet_round_trips_through_read_status() -> None:
    staff = StaffInfo(department="Phòng Thông tin - Báo chí", staff="Nguyễn Văn Ánh", email="vt@stttt.gov.vn")
    original = OriginalDocument("000.00.00.G22", "1393/CVT-CL", "1393", "CVT-CL", date(2021, 4, 12))
    at = datetime(2026, 3, 2, 3, 0, 5, tzinfo=UTC)
    packet = status_packet(
        sender=Organ(organ_id="000.00.12.H10", name="Sở Thông tin và Truyền thông"),
        response=response_for(original, fallback_organ_id=DEPT),
        code="05",
        text="Đơn vị chủ trì đang xử lý: STTTT.TTBCXB",
        occurred_at=at,
        staff=staff,
    )
    read = read_status(packet.encode("utf-8"))
    assert read.status_code == "05"
    assert read.description == "Đơn vị chủ trì đang xử lý: STTTT.TTBCXB"
    assert read.staff == staff
    assert read.sender.name == "Sở Thông tin và Truyền thông"
    assert read.response_for.document_id == "000.00.00.G22,2021/04/12,1393/CVT-CL"
    # Wall time in Việt Nam (UTC+7), as the exchange writes it.
    assert read.timestamp == datetime(2026, 3, 2, 10, 0, 5)
    assert "<edXML:StatusCode>05</edXML:StatusCode>" in packet


def test_an_issuer_without_an_agency_identifier_gets_the_departments_in_its_document_id() -> None:
    original = OriginalDocument(None, "1400/CVT-CL", "1400", "CVT-CL", date(2026, 12, 1))
    found = response_for(original, fallback_organ_id=DEPT)
    assert found.document_id == "000.00.12.H10,2026/12/01,1400/CVT-CL"
    assert not found.document_id.startswith(",")
    # ResponseFor/OrganId stays unknown: the department does not pretend to be the issuer.
    assert found.organ_id is None


def test_15_and_16_describe_the_kind_of_change_in_vietnamese() -> None:
    assert description(StatusCode.CHANGE_ACCEPTED, kind=LifecycleKind.REVOCATION) == "Đồng ý lấy lại văn bản"
    assert description(StatusCode.CHANGE_ACCEPTED, kind=LifecycleKind.UPDATE) == "Đồng ý cập nhật văn bản"
    assert (
        description(
            StatusCode.CHANGE_REFUSED,
            kind=LifecycleKind.REPLACEMENT,
            detail=state_refusal_reason(DirectiveStatus.REJECTED),
        )
        == "Từ chối thay thế văn bản: văn bản đã bị từ chối tiếp nhận"
    )
    assert StatusCode.CHANGE_ACCEPTED == "15" and StatusCode.CHANGE_REFUSED == "16"
    try:
        description(StatusCode.CHANGE_REFUSED)
    except ValueError as exc:
        assert "kind" in str(exc)
    else:
        raise AssertionError("15/16 without a kind must be refused")


def test_progress_statuses_speak_for_the_chu_tri_units_and_05_for_those_that_started() -> None:
    tasks = [
        TaskState("1", "SYT", "chu_tri", "in_progress", started=True),
        TaskState("2", "BPTV", "chu_tri", "assigned"),
        TaskState("3", "CTTDT", "phoi_hop", "in_progress", started=True),
        TaskState("4", "STTTT.BGD", "chu_tri", "cancelled"),
    ]
    assert progress_units(StatusCode.ASSIGNED, tasks) == ["BPTV", "SYT"]
    assert progress_units(StatusCode.IN_PROGRESS, tasks) == ["SYT"]
    assert progress_units(StatusCode.COMPLETED, tasks) == ["BPTV", "SYT"]
