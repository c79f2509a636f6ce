"""Cập nhật văn bản on a directive's page: the form, the merge patch sent to intake with the clerk's own
token, the API's refusals next to their fields, and the revision history (intake answered by `responses`)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from console.app import create_app
from console.pages.clerk import iso_date, merge_patch
from console.settings import Settings
from flask.testing import FlaskClient
from shared.auth import issue_token

INTAKE = "http://intake.test"
ROUTING = "http://routing.test"
ID = "0193a1b2-0000-7000-8000-000000000001"
CSRF = "c" * 32
TOKEN = issue_token("s" * 40, sub="van-thu", roles=["clerk"])


def directive(**changes: Any) -> dict[str, Any]:
    return {
        "id": ID,
        "status": "registered",
        "arrival_number": 3,
        "arrival_date": "2026-12-01",
        "issuer": {"name": "Ban Tuyên giáo Tỉnh ủy", "code": None},
        "number": "171-CV/BTGTU",
        "document_type": "Công văn",
        "issued_date": "2026-12-01",
        "subject": "Triển khai Tháng hành động vì an toàn thực phẩm",
        "content": None,
        "urgency": "thuong",
        "due_date": "2026-12-15",
        "signer": None,
        "attachments": [],
        "revision": 1,
        "replaces": None,
        "replaced_by": None,
        **changes,
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    settings = Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_CONSOLE_INTAKE_URL": INTAKE,
            "DOCROUTE_CONSOLE_ROUTING_URL": ROUTING,
        }
    )
    app = create_app(settings)
    with app.test_client() as test_client:
        with test_client.session_transaction() as session:
            session["token"] = TOKEN
            session["csrf"] = CSRF
        yield test_client


@pytest.fixture
def intake() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{ROUTING}/v1/directives/{ID}/progress", status=404, json={"title": "Not Found"})
        yield mock


def test_typed_dates_are_sent_iso_and_only_what_changed_is_patched() -> None:
    assert iso_date("05/01/2027") == "2027-01-05"
    assert iso_date("2027-01-05") == "2027-01-05"
    assert iso_date(" ") is None
    assert iso_date("31/02/2027") == "31/02/2027"  # sent as typed: the API names what is wrong with it
    shown = {"subject": "A", "due_date": "15/12/2026", "urgency": "thuong", "content": "x"}
    assert merge_patch(shown, {**shown, "due_date": "2026-12-15"}) == {}
    assert merge_patch(shown, {**shown, "due_date": "", "content": ""}) == {"due_date": None, "content": None}
    assert merge_patch(shown, {**shown, "urgency": "khan", "subject": "Chủ đề mới"}) == {
        "urgency": "khan",
        "subject": "Chủ đề mới",
    }


def test_the_form_is_prefilled_with_the_due_date_written_dd_mm_yyyy(
    client: FlaskClient, intake: responses.RequestsMock
) -> None:
    intake.get(f"{INTAKE}/v1/directives/{ID}", json=directive())
    page = client.get(f"/van-ban/{ID}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Cập nhật văn bản" in html
    assert re.search(r'id="u-due_date"[^>]*value="15/12/2026"', html)
    assert '<option value="thuong" selected>' in html
    assert "Triển khai Tháng hành động vì an toàn thực phẩm</textarea>" in html
    assert f'name="csrf_token" value="{CSRF}"' in html
    assert "Lịch sử cập nhật" not in html  # revision 1: nothing updated yet, no call for the history
    assert not any("/revisions" in call.request.url for call in intake.calls)


def test_an_update_patches_the_changed_fields_with_the_clerks_token_and_says_the_revision(
    client: FlaskClient, intake: responses.RequestsMock
) -> None:
    intake.patch(f"{INTAKE}/v1/directives/{ID}", json=directive(due_date="2027-01-05", revision=2))
    form = {
        "csrf_token": CSRF,
        "shown_subject": "Triển khai Tháng hành động vì an toàn thực phẩm",
        "shown_due_date": "15/12/2026",
        "shown_urgency": "thuong",
        "shown_content": "",
        "shown_revision": "1",
        "subject": "Triển khai Tháng hành động vì an toàn thực phẩm",
        "due_date": "05/01/2027",
        "urgency": "thuong",
        "content": "",
        "reason": "Lùi hạn theo đề nghị của Ban",
        "files": (io.BytesIO(b"%PDF-1.7 ..."), "bổ-sung.pdf", "application/pdf"),
    }
    answer = client.post(f"/van-ban/{ID}/cap-nhat", data=form, content_type="multipart/form-data")
    assert answer.status_code == 302
    assert "phi%C3%AAn+b%E1%BA%A3n+2" in answer.headers["Location"]  # Đã cập nhật: phiên bản 2
    sent = intake.calls[-1].request
    assert sent.method == "PATCH"
    assert sent.headers["Content-Type"] == "application/merge-patch+json"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(sent.body)
    assert body["due_date"] == "2027-01-05"
    assert body["reason"] == "Lùi hạn theo đề nghị của Ban"
    assert [a["filename"] for a in body["attachments"]] == ["bổ-sung.pdf"]
    assert set(body) == {"due_date", "reason", "attachments"}  # unchanged fields are not sent


def test_the_apis_refusal_stands_next_to_its_field_and_the_typed_values_are_kept(
    client: FlaskClient, intake: responses.RequestsMock
) -> None:
    intake.get(f"{INTAKE}/v1/directives/{ID}", json=directive())
    intake.patch(
        f"{INTAKE}/v1/directives/{ID}",
        status=422,
        json={
            "title": "Unprocessable Content",
            "detail": "invalid metadata",
            "errors": {"due_date": ["ngày hạn xử lý trước ngày ban hành"]},
        },
    )
    form = {
        "csrf_token": CSRF,
        "shown_due_date": "15/12/2026",
        "shown_subject": "Triển khai",
        "shown_urgency": "thuong",
        "shown_revision": "1",
        "subject": "Triển khai",
        "urgency": "thuong",
        "due_date": "01/01/2020",
        "reason": "Đổi hạn",
    }
    answer = client.post(f"/van-ban/{ID}/cap-nhat", data=form)
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert '<p class="error" id="ue-due_date">ngày hạn xử lý trước ngày ban hành</p>' in html
    assert re.search(
        r'id="u-due_date"[^>]*value="01/01/2020"[^>]*aria-describedby="uh-due_date ue-due_date"', html
    )
    assert 'aria-invalid="true"' in html
    assert ">Đổi hạn</textarea>" in html
    assert 'name="shown_due_date" value="15/12/2026"' in html  # still compared with what was shown
    (patch,) = [call.request for call in intake.calls if call.request.method == "PATCH"]
    assert json.loads(patch.body)["due_date"] == "2020-01-01"


def test_a_conflict_shows_the_apis_message(client: FlaskClient, intake: responses.RequestsMock) -> None:
    intake.get(f"{INTAKE}/v1/directives/{ID}", json=directive(status="revoked"))
    intake.patch(
        f"{INTAKE}/v1/directives/{ID}",
        status=409,
        json={"title": "Conflict", "detail": f"directive {ID} is revoked; it cannot be updated"},
    )
    answer = client.post(f"/van-ban/{ID}/cap-nhat", data={"csrf_token": CSRF, "due_date": "05/01/2027"})
    assert answer.status_code == 409
    html = answer.get_data(as_text=True)
    assert f"Chưa cập nhật được: directive {ID} is revoked; it cannot be updated" in html
    assert 'id="u-due_date"' not in html  # a revoked directive offers no update form


def test_the_history_names_the_fields_in_vietnamese_and_a_replaced_directive_links_onward(
    client: FlaskClient, intake: responses.RequestsMock
) -> None:
    newer = "0193a1b2-0000-7000-8000-000000000009"
    intake.get(
        f"{INTAKE}/v1/directives/{ID}",
        json=directive(status="replaced", revision=2, replaced_by={"id": newer, "url": "/x"}),
    )
    intake.get(
        f"{INTAKE}/v1/directives/{ID}/revisions",
        json={
            "directive_id": ID,
            "revision": 2,
            "status": "replaced",
            "items": [
                {
                    "revision": 1,
                    "at": "2026-12-01T02:00:00+00:00",
                    "by": "van-thu",
                    "reason": None,
                    "changes": {},
                },
                {
                    "revision": 2,
                    "at": "2026-12-04T23:41:53+00:00",
                    "by": "van-thu",
                    "reason": "Lùi hạn theo đề nghị của Ban",
                    "changes": {
                        "due_date": {"from": "2026-12-15", "to": "2027-01-05"},
                        "urgency": {"from": "thuong", "to": "hoa_toc"},
                        "attachments": {"added": [{"id": "a1", "filename": "bổ-sung.pdf"}]},
                    },
                },
            ],
        },
    )
    html = client.get(f"/van-ban/{ID}").get_data(as_text=True)
    assert "Lịch sử cập nhật" in html
    assert "Phiên bản 2</strong> — 05/12/2026 06:41, van-thu" in html
    assert "Lý do: Lùi hạn theo đề nghị của Ban" in html
    assert "Hạn xử lý: 15/12/2026 → 05/01/2027" in html
    assert "Độ khẩn: Thường → Hỏa tốc" in html
    assert "Tệp đính kèm: thêm bổ-sung.pdf" in html
    assert f'href="/van-ban/{newer}"' in html
    assert 'id="u-due_date"' not in html


def test_an_update_without_the_forms_csrf_token_is_refused(
    client: FlaskClient, intake: responses.RequestsMock
) -> None:
    answer = client.post(f"/van-ban/{ID}/cap-nhat", data={"due_date": "05/01/2027"})
    assert answer.status_code == 400
    assert not intake.calls


def test_a_replacement_links_back_and_an_update_that_changes_nothing_says_so(
    client: FlaskClient, intake: responses.RequestsMock
) -> None:
    older = "0193a1b2-0000-7000-8000-000000000002"
    intake.get(f"{INTAKE}/v1/directives/{ID}", json=directive(replaces={"id": older, "url": "/x"}))
    html = client.get(f"/van-ban/{ID}").get_data(as_text=True)
    assert f'href="/van-ban/{older}"' in html and "Thay thế cho" in html
    assert 'id="u-due_date"' in html  # the replacement itself is registered and can be updated

    intake.patch(f"{INTAKE}/v1/directives/{ID}", json=directive())
    answer = client.post(
        f"/van-ban/{ID}/cap-nhat",
        data={
            "csrf_token": CSRF,
            "shown_revision": "1",
            "shown_due_date": "15/12/2026",
            "due_date": "15/12/2026",
        },
    )
    assert answer.status_code == 302
    assert "phi%C3%AAn+b%E1%BA%A3n" not in answer.headers["Location"]
    (patch,) = [call.request for call in intake.calls if call.request.method == "PATCH"]
    assert json.loads(patch.body) == {}
