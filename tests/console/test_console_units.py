"""The console's own logic: Vietnamese formatting, the inbox's order, who a token says a person is."""

from __future__ import annotations

from datetime import date

from console.app import Person, date_vn, number_vn, token_claims
from console.pages.unit import inbox_order
from shared.auth import issue_token


def test_dates_are_written_dd_mm_yyyy_and_instants_in_vietnam_time() -> None:
    assert date_vn("2026-12-05") == "05/12/2026"
    assert date_vn(date(2021, 4, 8)) == "08/04/2021"
    assert date_vn("2026-12-04T23:41:53+00:00") == "05/12/2026 06:41"
    assert date_vn(None) == "—"


def test_numbers_group_thousands_with_dots() -> None:
    assert number_vn(1234567) == "1.234.567"
    assert number_vn(12) == "12"


def test_the_inbox_puts_open_overdue_and_urgent_work_first_and_the_newest_first_within() -> None:
    tasks = [
        {
            "id": "done",
            "status": "completed",
            "overdue": False,
            "urgency": "hoa_toc",
            "created_at": "2026-12-04",
        },
        {
            "id": "old-normal",
            "status": "assigned",
            "overdue": False,
            "urgency": "thuong",
            "created_at": "2026-12-01",
        },
        {
            "id": "new-normal",
            "status": "assigned",
            "overdue": False,
            "urgency": "thuong",
            "created_at": "2026-12-03",
        },
        {
            "id": "urgent",
            "status": "received",
            "overdue": False,
            "urgency": "khan",
            "created_at": "2026-12-02",
        },
        {
            "id": "late",
            "status": "in_progress",
            "overdue": True,
            "urgency": "thuong",
            "created_at": "2026-11-01",
        },
    ]
    assert [t["id"] for t in inbox_order(tasks)] == ["late", "urgent", "new-normal", "old-normal", "done"]


def test_a_token_with_a_unit_claim_is_that_unit_whatever_other_roles_it_carries() -> None:
    token = issue_token("s" * 40, sub="x", roles=["unit", "clerk"], unit="PVHTT.DONGXOAI")
    claims = token_claims(token)
    person = Person(sub=claims["sub"], roles=tuple(claims["roles"]), unit=claims["unit"], token=token)
    assert person.is_unit and not person.has("clerk")
    assert person.label == "Đơn vị PVHTT.DONGXOAI"
