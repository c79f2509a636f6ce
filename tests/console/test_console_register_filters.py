"""The register's filters: độ khẩn, trạng thái and hạn xử lý become intake's register parameters, and the
page keeps what was chosen (intake answered by `responses`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from console.app import create_app
from console.pages.clerk import due_filter
from console.settings import Settings
from flask.testing import FlaskClient
from shared.auth import issue_token

INTAKE = "http://intake.test"
TOKEN = issue_token("s" * 40, sub="van-thu", roles=["clerk"])
EMPTY = {"items": [], "total": 0, "page": 1, "per_page": 25}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    settings = Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_CONSOLE_INTAKE_URL": INTAKE})
    with create_app(settings).test_client() as test_client:
        with test_client.session_transaction() as session:
            session["token"] = TOKEN
        yield test_client


def test_due_soon_and_overdue_are_what_is_not_done_within_a_week_or_past_its_date() -> None:
    today = date(2026, 12, 31)
    assert due_filter("sap-den-han", today) == {
        "unfinished": "true",
        "due_from": "2026-12-31",
        "due_to": "2027-01-07",
    }
    assert due_filter("qua-han", today) == {"unfinished": "true", "due_to": "2026-12-30"}
    assert due_filter("", today) == {} and due_filter("bat-ky", today) == {}


def test_the_filters_reach_intake_and_stay_chosen(client: FlaskClient) -> None:
    with responses.RequestsMock() as intake:
        call = intake.get(f"{INTAKE}/v1/directives", json=EMPTY)
        page = client.get("/so-den?urgency=hoa_toc&status=revoked&han=qua-han&q=an+to%C3%A0n")
        assert page.status_code == 200
        sent = parse_qs(urlsplit(call.calls[0].request.url).query)
    assert sent["urgency"] == ["hoa_toc"] and sent["status"] == ["revoked"]
    assert sent["unfinished"] == ["true"] and sent["due_to"] == [
        date.fromordinal(date.today().toordinal() - 1).isoformat()
    ]
    assert sent["q"] == ["an toàn"]
    assert call.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    html = page.get_data(as_text=True)
    assert '<option value="hoa_toc" selected>Hỏa tốc</option>' in html
    assert '<option value="revoked" selected>Đã thu hồi</option>' in html
    assert '<option value="qua-han" selected>Quá hạn, chưa hoàn thành</option>' in html


def test_no_filter_sends_none_of_them(client: FlaskClient) -> None:
    with responses.RequestsMock() as intake:
        call = intake.get(f"{INTAKE}/v1/directives", json=EMPTY)
        assert client.get("/so-den").status_code == 200
        sent = parse_qs(urlsplit(call.calls[0].request.url).query)
    assert not {"urgency", "status", "unfinished", "due_from", "due_to"} & set(sent)
