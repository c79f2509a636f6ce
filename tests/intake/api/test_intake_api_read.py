"""Reading back: one directive, its attachment bytes, the register with filters and paging, the CSV export."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from intake_testing import SAMPLE_NAMES, IntakeApp, minimal_pdf, sample


@pytest.fixture
def registered(intake: IntakeApp) -> dict[str, dict]:
    """The three sample directives, arriving on 2, 3 and 4 March 2026."""
    out = {}
    for day, name in zip((2, 3, 4), SAMPLE_NAMES, strict=True):
        intake.clock.now = datetime(2026, 3, day, 2, 0, tzinfo=UTC)
        body = {
            **sample(name),
            "attachments": [
                {
                    "filename": f"Bản gốc {name}.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(minimal_pdf(name)).decode(),
                }
            ],
        }
        response = intake.post_json(body, role="clerk", headers={})
        assert response.status_code == 201
        out[name] = response.get_json()
    return out


def test_a_directive_reads_back_as_registered(intake: IntakeApp, registered: dict) -> None:
    created = registered["120-KH-BCD"]
    for role in ("clerk", "auditor", "admin"):
        response = intake.client.get(created["url"], headers=intake.auth(role))
        assert response.status_code == 200
        assert response.get_json() == created


def test_unknown_ids_are_404_problems(intake: IntakeApp, registered: dict) -> None:
    response = intake.client.get("/v1/directives/nope", headers=intake.auth("clerk"))
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    created = registered["1393-CVT-CL"]
    response = intake.client.get(f"{created['url']}/attachments/nope", headers=intake.auth("clerk"))
    assert response.status_code == 404


def test_a_unit_account_cannot_read_the_register(intake: IntakeApp, registered: dict) -> None:
    assert intake.client.get("/v1/directives", headers=intake.auth("unit")).status_code == 403
    assert intake.client.get(registered["1393-CVT-CL"]["url"], headers=intake.auth("unit")).status_code == 403


def test_a_submitter_sees_only_its_own_submissions(intake: IntakeApp, registered: dict) -> None:
    mine = intake.post_json(
        {**sample("1393-CVT-CL"), "issued_date": "2021-04-10"},
        headers=intake.auth("submitter", sub="eoffice-a"),
    ).get_json()
    own = intake.auth("submitter", sub="eoffice-a")
    listing = intake.client.get("/v1/directives", headers=own).get_json()
    assert [d["id"] for d in listing["items"]] == [mine["id"]]
    assert intake.client.get(mine["url"], headers=own).status_code == 200
    assert intake.client.get(registered["1393-CVT-CL"]["url"], headers=own).status_code == 404


def test_attachment_bytes_are_identical_with_a_utf8_file_name(intake: IntakeApp, registered: dict) -> None:
    created = registered["171-CV-BTGTU"]
    [attachment] = created["attachments"]
    response = intake.client.get(attachment["url"], headers=intake.auth("auditor"))
    assert response.status_code == 200
    assert response.data == minimal_pdf("171-CV-BTGTU")
    assert hashlib.sha256(response.data).hexdigest() == attachment["sha256"]
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(attachment["size"])
    disposition = response.headers["Content-Disposition"]
    assert f"filename*=UTF-8''{quote('Bản gốc 171-CV-BTGTU.pdf', safe='')}" in disposition
    disposition.encode("latin-1")  # the header itself stays ASCII-safe


def query(intake: IntakeApp, **params) -> dict:
    response = intake.client.get("/v1/directives", query_string=params, headers=intake.auth("clerk"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def numbers_of(page: dict) -> list[str]:
    return [d["number"] for d in page["items"]]


def test_the_register_lists_newest_first_with_paging(intake: IntakeApp, registered: dict) -> None:
    page = query(intake)
    assert (page["total"], page["page"], page["per_page"]) == (3, 1, 20)
    assert numbers_of(page) == ["120/KH-BCĐ", "171-CV/BTGTU", "1393/CVT-CL"]
    second = query(intake, page=2, per_page=2)
    assert numbers_of(second) == ["1393/CVT-CL"]
    assert second["total"] == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"issuer": "cuc vien thong"}, ["1393/CVT-CL"]),
        ({"issuer": "Tuyên giáo"}, ["171-CV/BTGTU"]),
        ({"number": "171-CV/BTGTU"}, ["171-CV/BTGTU"]),
        ({"number": "0120/kh-bcđ"}, ["120/KH-BCĐ"]),
        ({"number": "1393"}, ["1393/CVT-CL"]),
        ({"document_type": "Công văn"}, ["171-CV/BTGTU", "1393/CVT-CL"]),
        ({"document_type": "KH"}, ["120/KH-BCĐ"]),
        ({"arrival_from": "2026-03-03"}, ["120/KH-BCĐ", "171-CV/BTGTU"]),
        ({"arrival_from": "2026-03-03", "arrival_to": "2026-03-03"}, ["171-CV/BTGTU"]),
        ({"q": "an toan thuc pham"}, ["120/KH-BCĐ"]),
        ({"q": "PHÒNG, CHỐNG THAM NHŨNG"}, ["171-CV/BTGTU"]),
        ({"q": "100%_"}, []),
        ({"urgency": "khan"}, ["120/KH-BCĐ"]),
        ({"urgency": "thuong"}, ["171-CV/BTGTU", "1393/CVT-CL"]),
        ({"status": "registered"}, ["120/KH-BCĐ", "171-CV/BTGTU", "1393/CVT-CL"]),
        ({"status": "revoked"}, []),
        ({"due_from": "2021-05-01", "due_to": "2021-05-31"}, ["120/KH-BCĐ"]),
        ({"due_to": "2021-05-14"}, []),
        ({"unfinished": "true"}, ["120/KH-BCĐ", "171-CV/BTGTU", "1393/CVT-CL"]),
    ],
)
def test_register_filters(intake: IntakeApp, registered: dict, params: dict, expected: list[str]) -> None:
    page = query(intake, **params)
    assert numbers_of(page) == expected
    assert page["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": 101}, "per_page"),
        ({"page": 0}, "page"),
        ({"arrival_from": "yesterday"}, "arrival_from"),
        ({"arrival_from": "2026-03-05", "arrival_to": "2026-03-01"}, "arrival_from"),
        ({"number": "abc/"}, "number"),
        ({"urgency": "gap"}, "urgency"),
        ({"status": "done"}, "status"),
        ({"due_from": "2026-03-05", "due_to": "2026-03-01"}, "due_from"),
    ],
)
def test_bad_register_queries_are_422(intake: IntakeApp, params: dict, field: str) -> None:
    response = intake.client.get("/v1/directives", query_string=params, headers=intake.auth("clerk"))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_register_csv_is_utf8_with_bom_in_arrival_order(intake: IntakeApp, registered: dict) -> None:
    response = intake.client.get("/v1/register.csv?year=2026", headers=intake.auth("auditor"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Số đến", "Ngày đến", "Tác giả"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    assert rows[3][2] == "Ban Chỉ đạo liên ngành an toàn thực phẩm tỉnh Bình Phước"
    assert rows[3][4] == "120/KH-BCĐ"
    assert rows[1][1] == "02/03/2026"
    empty = intake.client.get("/v1/register.csv?year=2025", headers=intake.auth("clerk"))
    assert len(list(csv.reader(io.StringIO(empty.data.decode("utf-8-sig"))))) == 1
    assert (
        intake.client.get("/v1/register.csv?year=2026", headers=intake.auth("submitter")).status_code == 403
    )


def test_openapi_describes_the_routes(intake: IntakeApp) -> None:
    spec = intake.client.get("/openapi.json").get_json()
    assert {"/v1/directives", "/v1/directives/{directive_id}", "/v1/register.csv"} <= set(spec["paths"])
    content = spec["paths"]["/v1/directives"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)


def test_readiness_checks_database_and_store(intake: IntakeApp) -> None:
    response = intake.client.get("/readyz")
    assert response.status_code == 200
    assert set(response.get_json()["checks"]) == {"database", "object_store"}


def test_the_register_narrows_to_what_is_still_to_do_and_overdue(intake: IntakeApp, registered: dict) -> None:
    """`unfinished`: registered and no 06 yet; with `due_to` yesterday, overdue (the console's Quá hạn)."""
    import sqlalchemy as sa
    from intake.adapters.tables import status_updates

    done, revoked = registered["1393-CVT-CL"], registered["171-CV-BTGTU"]
    response = intake.client.post(
        f"/v1/directives/{revoked['id']}:revoke",
        json={"reason": "Ban hành nhầm"},
        headers=intake.auth("clerk"),
    )
    assert response.status_code == 200
    # Last, after every status intake writes itself: as routing's roll-up leaves it, every chủ trì task done.
    with intake.deps.engine.begin() as conn:
        cursor = conn.execute(sa.select(sa.func.max(status_updates.c.cursor))).scalar_one()
        conn.execute(
            sa.insert(status_updates).values(
                id="s-done",
                cursor=cursor + 1,
                directive_id=done["id"],
                status_code="06",
                description="Hoàn thành",
                occurred_at=datetime(2026, 3, 5, tzinfo=UTC),
                response_for={},
                dedupe_key=f"{done['id']}:06",
            )
        )
    assert numbers_of(query(intake, unfinished="true")) == ["120/KH-BCĐ"]
    assert numbers_of(query(intake, status="revoked")) == ["171-CV/BTGTU"]
    assert numbers_of(query(intake, unfinished="true", due_to="2021-05-16")) == ["120/KH-BCĐ"]
    assert numbers_of(query(intake, unfinished="true", due_to="2021-05-14")) == []
