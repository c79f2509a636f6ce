"""On PostgreSQL + S3: input that used to be a 500 (NUL, huge pages) is refused; spooled files verify."""

from __future__ import annotations

import base64
import json

import pytest
from intake_testing import IntakeApp, minimal_pdf, sample

pytestmark = pytest.mark.integration


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    return response.get_json()


@pytest.mark.parametrize("query", ["q=a%00b", "issuer=C%00c", "number=1%00/X"])
def test_nul_in_a_filter_is_a_400_on_postgresql(pg_intake: IntakeApp, query: str) -> None:
    response = pg_intake.client.get(f"/v1/directives?{query}", headers=pg_intake.auth("clerk"))
    assert query.split("=")[0] in _problem(response, 400)["errors"]


@pytest.mark.parametrize(("field", "text"), [("subject", "V/v\\u0000x"), ("issuer", None)])
def test_nul_in_a_submission_is_a_400_on_postgresql(
    pg_intake: IntakeApp, field: str, text: str | None
) -> None:
    body = json.dumps(sample("1393-CVT-CL"))[:-1]
    if field == "issuer":
        body += ', "issuer": {"name": "C\\u0000c"}}'
        expected = "issuer.name"
    else:
        body += f', "subject": "{text}"' + "}"
        expected = "subject"
    response = pg_intake.client.post(
        "/v1/directives", data=body.encode(), content_type="application/json", headers=pg_intake.auth()
    )
    assert expected in _problem(response, 400)["errors"]
    pg_intake.assert_nothing_stored()


def test_a_page_past_any_offset_is_refused_on_postgresql(pg_intake: IntakeApp) -> None:
    response = pg_intake.client.get("/v1/directives?page=100000000000000000", headers=pg_intake.auth("clerk"))
    assert "page" in _problem(response, 422)["errors"]
    last = pg_intake.client.get("/v1/directives?page=1000000&per_page=100", headers=pg_intake.auth("clerk"))
    assert last.status_code == 200
    assert last.get_json()["items"] == []


def test_a_spooled_base64_file_is_staged_to_s3_byte_for_byte(pg_intake: IntakeApp) -> None:
    data = minimal_pdf("Kế hoạch " * 4_500)  # base64 longer than the 64 KiB string threshold, under 64 KiB
    body = {
        **sample("1393-CVT-CL"),
        "attachments": [
            {
                "filename": "Kế hoạch.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(data).decode(),
            }
        ],
    }
    created = pg_intake.post_json(body)
    assert created.status_code == 201, created.get_json()
    attachment = created.get_json()["attachments"][0]
    assert attachment["filename"] == "Kế hoạch.pdf"
    assert pg_intake.client.get(attachment["url"], headers=pg_intake.auth()).data == data


@pytest.mark.parametrize("path", ["/v1/directives/a%00b", "/v1/directives/x/attachments/a%00b"])
def test_nul_in_a_path_is_a_400_on_postgresql(pg_intake: IntakeApp, path: str) -> None:
    assert _problem(pg_intake.client.get(path, headers=pg_intake.auth("clerk")), 400)["errors"]
