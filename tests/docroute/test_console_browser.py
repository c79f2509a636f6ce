"""The console as people use it: headless Chromium against `docroute run` with the seed loaded.

A văn thư registers a directive and sees its tasks reach the units; a district office takes, works and
completes its task; another unit's task is nowhere to be seen; an auditor checks the archived copy and the
audit chain. Every page visited passes axe-core with no serious or critical violation. With
DOCROUTE_SCREENSHOTS=<folder> the main pages are saved there (`make screenshots` writes docs/screenshots).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from embedded_runner import ROOT, Embedded, free_base_port, wait_for

pytestmark = pytest.mark.e2e

SAMPLE_PDF = ROOT / "samples" / "pdfs" / "1393-CVT-CL.pdf"
SCREENSHOTS = os.environ.get("DOCROUTE_SCREENSHOTS")
# The i-Speed letter's subject, which the sample rules route to 24 units.
SUBJECT = "V/v phối hợp, hỗ trợ, thúc đẩy ứng dụng i-Speed đo kiểm chất lượng Internet Việt Nam (đợt 2)"


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    runner = Embedded(tmp_path_factory.mktemp("console"), free_base_port())
    runner.start()
    # The seed's three directives are registered and routed before anyone signs in.
    wait_for(lambda: "số đến 3" in runner.output.read_text(encoding="utf-8"), timeout=90)
    yield runner
    runner.stop()


class Person:
    """One signed-in browser context; every page it opens is checked with axe-core."""

    def __init__(self, browser: Any, suite: Embedded, *, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900}, locale="vi-VN")
        self.page = self.context.new_page()
        self.suite = suite

    def sign_in(self, identity: str, unit: str | None = None) -> None:
        self.page.goto(self.suite.console + "/dang-nhap")
        self.page.check(f"#id-{identity}")
        if unit:
            self.page.select_option("#unit", unit)
        # The landing page must have loaded before the test reads or reloads it: a reload issued while
        # the sign-in redirect is still under way finds no active page to reload.
        with self.page.expect_navigation(wait_until="load"):
            self.page.click("button[type=submit]")

    def follow(self, target: Any) -> None:
        """Clicks a link or a form's button (selector or locator) and waits for the page it leads to."""
        with self.page.expect_navigation(wait_until="load"):
            (self.page.locator(target) if isinstance(target, str) else target).click()

    def refresh(self) -> None:
        """Loads the current page again, waiting until it has loaded."""
        self.page.wait_for_load_state("load")
        self.page.goto(self.page.url, wait_until="load")

    def open(self, path: str) -> None:
        self.page.goto(self.suite.console + path)

    def check_accessibility(self) -> None:
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        serious = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
        assert serious == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in serious]

    def screenshot(self, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def test_a_clerk_registers_a_directive_and_watches_it_reach_the_units(suite: Embedded, browser: Any) -> None:
    clerk = Person(browser, suite)
    clerk.sign_in("van-thu")
    page = clerk.page
    assert page.url.endswith("/so-den")
    assert page.get_by_role("heading", name="Sổ đăng ký văn bản đến").is_visible()
    # The seed is in the register, newest first or not, with its Vietnamese text intact.
    assert page.get_by_text("Triển khai Tháng hành động vì an toàn thực phẩm năm 2021").is_visible()
    clerk.check_accessibility()
    clerk.screenshot("so-den")

    # A bad number: the API's message stands next to the field, and what was typed is kept.
    clerk.open("/so-den/moi")
    clerk.check_accessibility()
    page.fill("#f-issuer_name", "Cục Viễn thông")
    page.fill("#f-number", "không có số")
    page.fill("#f-issued_date", "2026-12-01")
    page.fill("#f-subject", SUBJECT)
    page.set_input_files("#f-files", str(SAMPLE_PDF))
    clerk.follow("form.card button[type=submit]")
    error = page.locator("#e-number")
    assert error.is_visible()
    assert error.inner_text().strip()
    assert page.locator("#f-number").get_attribute("aria-invalid") == "true"
    assert page.input_value("#f-subject") == SUBJECT
    clerk.screenshot("vao-so-loi")

    page.fill("#f-number", "1401/CVT-CL")
    page.set_input_files("#f-files", str(SAMPLE_PDF))
    clerk.follow("form.card button[type=submit]")
    assert page.get_by_role("status").inner_text().startswith("Đã vào sổ: số đến 4")

    # Routing makes the i-Speed letter's 24 lead tasks; the page shows them once they exist.
    def routed() -> bool:
        clerk.refresh()
        return page.locator("table tbody tr").count() == 24

    wait_for(routed, timeout=30)
    assert page.get_by_role("cell", name="PVHTT.DONGXOAI").is_visible()
    clerk.check_accessibility()
    clerk.screenshot("van-ban")
    clerk.close()


def _unit_task_of(suite: Embedded, unit: str) -> str:
    ledger = requests.get(
        f"{suite.url(1)}/v1/units/{unit}/tasks", headers=suite.token("unit", unit), timeout=10
    ).json()
    return str(ledger["items"][0]["id"])


def test_a_district_office_works_its_task_and_sees_nothing_of_another_units(
    suite: Embedded, browser: Any
) -> None:
    office = Person(browser, suite, width=360)  # a phone in a district office
    office.sign_in("unit", "PVHTT.DONGXOAI")
    page = office.page
    assert page.url.endswith("/hop-viec")
    assert page.get_by_role("heading", name="Hộp việc — PVHTT.DONGXOAI").is_visible()
    office.check_accessibility()
    office.screenshot("hop-viec-360")

    office.follow(page.locator("ul.tasks a").first)
    office.follow(page.get_by_role("button", name="Nhận việc"))
    assert page.get_by_role("status").inner_text() == "Đã nhận việc."
    office.follow(page.get_by_role("button", name="Bắt đầu xử lý"))
    assert page.get_by_role("status").inner_text() == "Đã chuyển sang đang xử lý."
    page.fill("#note", "Đã triển khai tới các xã, phường")
    page.set_input_files("#report", str(SAMPLE_PDF))
    office.follow(page.get_by_role("button", name="Báo cáo hoàn thành"))
    assert page.get_by_role("status").inner_text() == "Đã báo cáo hoàn thành."
    assert "Hoàn thành" in page.locator("dl.meta").inner_text()
    office.check_accessibility()
    office.screenshot("viec")

    # Another unit's task, by its URL: the API answers 404 to this unit, and so does the console.
    foreign = _unit_task_of(suite, "PVHTT.BUDANG")
    response = page.goto(f"{suite.console}/viec/{foreign}")
    assert response is not None and response.status == 404
    assert "Chủ trì" not in page.content()
    office.close()


def test_an_auditor_checks_the_archived_copy_and_the_audit_chain(suite: Embedded, browser: Any) -> None:
    auditor = Person(browser, suite)
    auditor.sign_in("kiem-toan")
    page = auditor.page
    assert page.url.endswith("/luu-tru")
    wait_for(
        lambda: (auditor.refresh() or True) and page.locator("table tbody tr a").count() >= 3, timeout=30
    )
    auditor.check_accessibility()
    auditor.screenshot("luu-tru")
    auditor.follow(page.locator("table tbody tr a").first)
    assert page.get_by_text("Chữ ký số hợp lệ, do tổ chức được tin cậy cấp").is_visible()
    assert re.search(r"[0-9a-f]{64}", page.locator("dl.meta").inner_text())
    auditor.check_accessibility()
    auditor.screenshot("ban-luu")
    auditor.open("/nhat-ky")
    assert page.get_by_role("status").inner_text().startswith("Chuỗi băm nguyên vẹn")
    auditor.check_accessibility()
    # An auditor has no way to register: the page does not exist for them.
    response = page.goto(suite.console + "/so-den/moi")
    assert response is not None and response.status == 403
    auditor.close()


def test_a_form_posted_without_its_csrf_token_is_refused(suite: Embedded) -> None:
    session = requests.Session()
    signed_in = session.post(suite.console + "/dang-nhap", data={"identity": "van-thu"}, timeout=10)
    assert signed_in.status_code == 400  # even signing in needs the form's token
    form = session.get(suite.console + "/dang-nhap", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    session.post(
        suite.console + "/dang-nhap", data={"identity": "van-thu", "csrf_token": token.group(1)}, timeout=10
    )
    refused = session.post(
        suite.console + "/so-den/moi", data={"issuer_name": "x", "number": "1/X"}, timeout=10
    )
    assert refused.status_code == 400
    register = session.get(suite.console + "/so-den", timeout=10)
    assert register.status_code == 200 and "1/X" not in register.text
    assert (
        "Content-Security-Policy" in register.headers
        and register.headers["X-Content-Type-Options"] == "nosniff"
    )


def _register(suite: Embedded, number: str) -> str:
    """A directive registered over intake's API (the seed's Ban Tuyên giáo letter under another number),
    once routing has made its tasks."""
    from docroute.seed import VIETNAM, as_issued_on

    sample = json.loads((ROOT / "samples" / "directives" / "171-CV-BTGTU.json").read_text(encoding="utf-8"))
    metadata = as_issued_on(sample, datetime.now(VIETNAM).date())
    metadata["number"] = number
    metadata["attachments"] = [
        {
            "filename": SAMPLE_PDF.name,
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(SAMPLE_PDF.read_bytes()).decode("ascii"),
        }
    ]
    clerk = suite.token("clerk")
    created = requests.post(f"{suite.url(0)}/v1/directives", json=metadata, headers=clerk, timeout=30)
    assert created.status_code == 201, created.text
    directive_id = str(created.json()["id"])

    def routed() -> bool:
        progress = requests.get(
            f"{suite.url(1)}/v1/directives/{directive_id}/progress", headers=clerk, timeout=10
        )
        return progress.status_code == 200 and bool(progress.json()["tasks"])

    wait_for(routed, timeout=30)
    return directive_id


def test_a_clerk_revokes_and_refuses_directives_with_the_apis_message_at_the_reason(
    suite: Embedded, browser: Any
) -> None:
    revoked, refused, raced = (_register(suite, f"{n}-CV/BTGTU") for n in (901, 902, 903))
    clerk = Person(browser, suite)
    clerk.sign_in("van-thu")
    page = clerk.page

    # Revocation with a reason of spaces only: intake refuses it, its message stands next to the field.
    clerk.open(f"/van-ban/{revoked}")
    assert page.get_by_role("heading", name="Thu hồi hoặc từ chối tiếp nhận").is_visible()
    clerk.check_accessibility()
    page.fill("#r-thu-hoi", "   ")
    clerk.follow(page.get_by_role("button", name="Thu hồi", exact=True))
    error = page.locator("#e-thu-hoi")
    assert error.is_visible() and error.inner_text().strip()
    assert page.locator("#r-thu-hoi").get_attribute("aria-invalid") == "true"
    assert "e-thu-hoi" in (page.locator("#r-thu-hoi").get_attribute("aria-describedby") or "")
    clerk.check_accessibility()
    clerk.screenshot("thu-hoi-loi")

    reason = "Ban hành nhầm đối tượng; Ban sẽ gửi văn bản thay thế"
    page.fill("#r-thu-hoi", reason)
    clerk.follow(page.get_by_role("button", name="Thu hồi", exact=True))
    assert page.get_by_role("status").inner_text() == "Đã thu hồi văn bản; các đơn vị được báo hủy việc."
    assert "Đã thu hồi" in page.locator("dl.meta").inner_text()
    assert page.locator("#r-thu-hoi").count() == 0, "a revoked directive offers no second revocation"

    # Routing cancels every task and the page shows it.
    def cancelled() -> bool:
        clerk.refresh()
        statuses = page.locator("table tbody tr td:nth-child(4)").all_inner_texts()
        return bool(statuses) and all(s == "Đã hủy" for s in statuses)

    wait_for(cancelled, timeout=30)

    # Refusal (từ chối tiếp nhận), with its reason in Vietnamese.
    clerk.open(f"/van-ban/{refused}")
    page.fill("#r-tu-choi", "Văn bản gửi nhầm cơ quan, đề nghị gửi Sở Văn hóa, Thể thao và Du lịch")
    clerk.follow(page.get_by_role("button", name="Từ chối tiếp nhận", exact=True))
    assert page.get_by_role("status").inner_text().startswith("Đã từ chối tiếp nhận văn bản")
    assert "Đã từ chối tiếp nhận" in page.locator("dl.meta").inner_text()
    clerk.check_accessibility()

    # Another clerk revokes a directive while this one has its page open: the refusal now answers 409,
    # and the API's words are next to the reason, which is kept.
    clerk.open(f"/van-ban/{raced}")
    revoke = requests.post(
        f"{suite.url(0)}/v1/directives/{raced}:revoke",
        json={"reason": "Thu hồi theo đề nghị của nơi ban hành"},
        headers=suite.token("clerk"),
        timeout=30,
    )
    assert revoke.status_code == 200, revoke.text
    page.fill("#r-tu-choi", "Không thuộc thẩm quyền")
    clerk.follow(page.get_by_role("button", name="Từ chối tiếp nhận", exact=True))
    assert page.locator("#e-tu-choi").inner_text().strip()
    assert page.input_value("#r-tu-choi") == "Không thuộc thẩm quyền"
    assert "Đã thu hồi" in page.locator("dl.meta").inner_text()
    clerk.close()


def test_a_clerk_moves_a_seed_directives_due_date_and_routing_moves_its_tasks(
    suite: Embedded, browser: Any
) -> None:
    clerk_token = suite.token("clerk")
    found = requests.get(
        f"{suite.url(0)}/v1/directives", params={"number": "120/KH-BCĐ"}, headers=clerk_token, timeout=10
    ).json()["items"]
    directive_id = str(found[0]["id"])
    old_due = datetime.fromisoformat(found[0]["due_date"]).date()
    new_due = (old_due + timedelta(days=7)).strftime("%d/%m/%Y")
    clerk = Person(browser, suite)
    clerk.sign_in("van-thu")
    page = clerk.page
    clerk.open(f"/van-ban/{directive_id}")
    assert page.input_value("#u-due_date") == old_due.strftime("%d/%m/%Y")
    assert page.input_value("#u-urgency") == "khan"
    clerk.check_accessibility()

    # A due date before the issued date: intake's message next to the field, what was typed kept.
    page.fill("#u-due_date", "01/01/2000")
    page.fill("#u-reason", "Lùi hạn theo đề nghị của Ban Chỉ đạo")
    clerk.follow(page.get_by_role("button", name="Cập nhật", exact=True))
    assert page.locator("#ue-due_date").inner_text().strip()
    assert page.locator("#u-due_date").get_attribute("aria-invalid") == "true"
    assert page.input_value("#u-reason") == "Lùi hạn theo đề nghị của Ban Chỉ đạo"
    clerk.check_accessibility()

    page.fill("#u-due_date", new_due)
    clerk.follow(page.get_by_role("button", name="Cập nhật", exact=True))
    assert page.get_by_role("status").inner_text() == "Đã cập nhật: phiên bản 2"
    history = page.locator("ul.revisions").inner_text()
    assert f"Hạn xử lý: {old_due.strftime('%d/%m/%Y')} → {new_due}" in history
    assert "Lùi hạn theo đề nghị của Ban Chỉ đạo" in history
    assert new_due in page.locator("dl.meta").inner_text()

    # The Sở Y tế's task took its due date from the directive: routing moves it, and the page shows it.
    def moved() -> bool:
        clerk.refresh()
        row = page.locator("table tbody tr", has=page.get_by_role("cell", name="SYT", exact=True))
        return row.count() == 1 and new_due in row.inner_text()

    wait_for(moved, timeout=30)
    clerk.check_accessibility()
    clerk.screenshot("cap-nhat")
    clerk.close()
