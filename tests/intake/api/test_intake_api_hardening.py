"""Intake's answers to the security review (issue 14): each test reproduces a finding and shows it closed."""

from __future__ import annotations

import base64
import csv
import io
import json

import pytest
from intake_testing import IntakeApp, build_intake_app, intake_environ, minimal_pdf, sample


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    return response.get_json()


def with_file(
    body: dict, data: bytes, *, filename: str = "Công văn.pdf", content_type: str = "application/pdf"
):
    return {
        **body,
        "attachments": [
            {
                "filename": filename,
                "content_type": content_type,
                "content_base64": base64.b64encode(data).decode(),
            }
        ],
    }


# --- 7: formula injection in the register CSV -----------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ['=HYPERLINK("http://x","Bấm")', "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", "  =cmd|' /C calc'!A0"],
)
def test_register_csv_neutralises_formulas_keeping_the_text(intake: IntakeApp, subject: str) -> None:
    assert intake.post_json({**sample("1393-CVT-CL"), "subject": f"{subject} Kế hoạch"}).status_code == 201
    response = intake.client.get("/v1/register.csv?year=2026", headers=intake.auth("clerk"))
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    cell = rows[1][7]
    assert cell.startswith("'")
    # Readable: the sender's text follows the quote (the domain collapses blanks), Vietnamese intact.
    assert cell[1:].endswith("Kế hoạch")
    assert subject.strip().split()[0] in cell


def test_register_csv_leaves_ordinary_cells_alone(intake: IntakeApp) -> None:
    assert intake.post_json(sample("171-CV-BTGTU")).status_code == 201
    response = intake.client.get("/v1/register.csv?year=2026", headers=intake.auth("clerk"))
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[1][4] == "171-CV/BTGTU"  # a number with a dash inside is not a formula
    assert not any(cell.startswith("'") for cell in rows[1])


# --- 13: content types, nosniff, CSP ---------------------------------------------------------------------


def test_html_attachments_are_refused(intake: IntakeApp) -> None:
    body = with_file(
        sample("1393-CVT-CL"), b"<script>alert(1)</script>", filename="a.html", content_type="text/html"
    )
    problem = problem_of(intake.post_json(body), 422)
    assert "attachments[0].content_type" in problem["errors"]
    intake.assert_nothing_stored()


def test_a_content_type_with_cr_lf_is_a_422_not_a_500(intake: IntakeApp) -> None:
    body = with_file(
        sample("1393-CVT-CL"), b"hello", filename="a.txt", content_type="text/plain\r\nX-Evil: 1"
    )
    problem = problem_of(intake.post_json(body), 422)
    assert "attachments[0].content_type" in problem["errors"]
    response = intake.post_multipart(sample("1393-CVT-CL"), [(b"<html>", "x.htm", "text/html")])
    assert "files[0].content_type" in problem_of(response, 422)["errors"]
    intake.assert_nothing_stored()


def test_downloads_say_nosniff_and_a_strict_policy(intake: IntakeApp) -> None:
    created = intake.post_json(with_file(sample("1393-CVT-CL"), minimal_pdf())).get_json()
    response = intake.client.get(created["attachments"][0]["url"], headers=intake.auth())
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.content_type == "application/pdf"


def test_a_stored_type_outside_the_list_is_served_as_a_neutral_download(intake: IntakeApp) -> None:
    import sqlalchemy as sa

    created = intake.post_json(
        with_file(sample("1393-CVT-CL"), b"hello", filename="a.txt", content_type="text/plain")
    ).get_json()
    with intake.deps.engine.begin() as conn:  # a row registered before the allow-list existed
        conn.execute(sa.text("UPDATE attachments SET content_type = 'text/html'"))
    response = intake.client.get(created["attachments"][0]["url"], headers=intake.auth())
    assert response.content_type == "application/octet-stream"
    assert response.data == b"hello"


# --- 15: the PDF check after cleaning; executables ------------------------------------------------------


@pytest.mark.parametrize("filename", ["x.PDF ", "x.pdf\x00", "x.pdf.", "x.pdf\u200b"])
def test_names_that_clean_to_pdf_must_hold_a_pdf(intake: IntakeApp, filename: str) -> None:
    response = intake.post_multipart(sample("1393-CVT-CL"), [(b"GIF89a not a pdf", filename, "image/png")])
    assert "declared as a PDF" in problem_of(response, 422)["errors"]["files[0]"][0]
    if "\x00" not in filename:  # JSON refuses NUL in any text before any rule runs
        body = with_file(sample("1393-CVT-CL"), b"GIF89a", filename=filename, content_type="image/png")
        assert "attachments[0]" in problem_of(intake.post_json(body), 422)["errors"]
    intake.assert_nothing_stored()


def test_programs_are_refused_whatever_their_name(intake: IntakeApp) -> None:
    response = intake.post_multipart(
        sample("1393-CVT-CL"), [(b"MZ\x90\x00 a PE program", "Báo cáo.docx", "application/octet-stream")]
    )
    problem = problem_of(response, 422)
    assert "programs are not accepted" in problem["errors"]["files[0]"][0]
    intake.assert_nothing_stored()


# --- 17: a duplicate does not reveal a directive the caller may not read --------------------------------


def test_duplicate_reveals_the_existing_directive_only_to_who_may_read_it(intake: IntakeApp) -> None:
    first = intake.post_json(
        sample("1393-CVT-CL"), headers=intake.auth("submitter", sub="he-thong-a")
    ).get_json()
    again = {**sample("1393-CVT-CL"), "subject": "khác"}
    # Another e-office system: told it is a duplicate, not which directive it is.
    stranger = intake.client.post(
        "/v1/directives",
        data=json.dumps(again).encode(),
        content_type="application/json",
        headers=intake.auth("submitter", sub="he-thong-b"),
    )
    problem = problem_of(stranger, 409)
    assert "existing_id" not in problem and "existing_url" not in problem
    assert first["id"] not in stranger.get_data(as_text=True)
    # The system that submitted it, and a clerk, are told which one.
    for headers in (intake.auth("submitter", sub="he-thong-a"), intake.auth("clerk")):
        response = intake.client.post(
            "/v1/directives",
            data=json.dumps(again).encode(),
            content_type="application/json",
            headers=headers,
        )
        assert problem_of(response, 409)["existing_id"] == first["id"]


# --- 3: length limits before any regular expression -----------------------------------------------------


def test_a_40000_space_number_is_refused_naming_the_field(intake: IntakeApp) -> None:
    body = {**sample("1393-CVT-CL"), "number": "1393" + " " * 40_000 + "/CVT-CL"}
    problem = problem_of(intake.post_json(body), 422)
    assert list(problem["errors"]) == ["number"]
    response = intake.client.get(
        "/v1/directives?number=" + "1" + "%20" * 40_000 + "/X", headers=intake.auth("clerk")
    )
    assert "number" in problem_of(response, 422)["errors"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content", "x" * 20_001),
        ("document_type", "K" * 101),
        ("confidentiality", "t" * 51),
        ("place", "p" * 201),
        ("external_id", "e" * 201),
        ("to_places", ["Sở"] * 201),
    ],
)
def test_every_free_text_field_has_a_limit(intake: IntakeApp, field: str, value) -> None:
    problem = problem_of(intake.post_json({**sample("1393-CVT-CL"), field: value}), 422)
    assert field in problem["errors"]


def test_a_huge_string_outside_the_files_is_refused_as_too_long(intake: IntakeApp) -> None:
    body = {**sample("1393-CVT-CL"), "subject": "a" * 200_000}
    problem = problem_of(intake.post_json(body), 422)
    assert "subject" in problem["errors"]
    intake.assert_nothing_stored()


# --- 16 and 22 on intake ---------------------------------------------------------------------------------


def test_unknown_query_parameters_are_refused(intake: IntakeApp) -> None:
    problem = problem_of(intake.client.get("/v1/directives?issuer_name=x", headers=intake.auth("clerk")), 400)
    assert list(problem["errors"]) == ["issuer_name"]
    problem_of(intake.client.get("/v1/register.csv?yr=2026", headers=intake.auth("clerk")), 400)


def test_page_that_overflows_the_offset_is_refused(intake: IntakeApp) -> None:
    response = intake.client.get("/v1/directives?page=100000000000000000", headers=intake.auth("clerk"))
    assert "page" in problem_of(response, 422)["errors"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ('"subject": "\\ud800"', "subject"),
        ('"subject": "a\\u0000b"', "subject"),
        ('"issuer": {"name": "\\udfff"}', "issuer.name"),
    ],
)
def test_unstorable_json_text_is_a_400_naming_the_field(intake: IntakeApp, data: str, field: str) -> None:
    body = json.dumps(sample("1393-CVT-CL"))[:-1] + ", " + data + "}"
    response = intake.client.post(
        "/v1/directives", data=body.encode(), content_type="application/json", headers=intake.auth()
    )
    assert field in problem_of(response, 400)["errors"]
    intake.assert_nothing_stored()


def test_unstorable_text_in_multipart_metadata_is_a_400(intake: IntakeApp) -> None:
    text = json.dumps(sample("1393-CVT-CL"))[:-1] + ', "place": "\\u0000"}'
    assert "place" in problem_of(intake.post_multipart(text, []), 400)["errors"]


@pytest.mark.parametrize("depth", [200, 200_000])
def test_deeply_nested_json_is_a_4xx(intake: IntakeApp, depth: int) -> None:
    body = b'{"subject": ' + b"[" * depth + b"]" * depth + b"}"
    response = intake.client.post(
        "/v1/directives", data=body, content_type="application/json", headers=intake.auth()
    )
    assert 400 <= response.status_code < 500
    assert response.content_type == "application/problem+json"
    text = json.dumps(sample("1393-CVT-CL"))[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    response = intake.post_multipart(text, [])
    assert 400 <= response.status_code < 500


# --- 11: large bodies are spooled, not held; large uploads are bounded ----------------------------------


def test_a_large_json_file_round_trips_through_the_spool(intake: IntakeApp, monkeypatch) -> None:
    data = minimal_pdf("x" * 50_000)  # larger than the 64 KiB long-string threshold once base64
    created = intake.post_json(with_file(sample("1393-CVT-CL"), data))
    assert created.status_code == 201, created.get_json()
    attachment = created.get_json()["attachments"][0]
    assert attachment["size"] == len(data)
    assert intake.client.get(attachment["url"], headers=intake.auth()).data == data


def test_escaped_slashes_in_base64_are_accepted(intake: IntakeApp) -> None:
    data = bytes(range(256)) * 200 + minimal_pdf()
    encoded = base64.b64encode(data).decode().replace("/", "\\/")
    body = json.dumps({**sample("1393-CVT-CL")})[:-1]
    body += ', "attachments": [{"filename": "a.dat", "content_type": "application/octet-stream", '
    body += f'"content_base64": "{encoded}"' + "}]}"
    response = intake.client.post(
        "/v1/directives", data=body.encode(), content_type="application/json", headers=intake.auth()
    )
    assert response.status_code == 201, response.get_json()
    url = response.get_json()["attachments"][0]["url"]
    assert intake.client.get(url, headers=intake.auth()).data == data


@pytest.mark.parametrize("bad", ["QUJD" * 20_000 + "Q", "QUJD" * 20_000 + "!!!!", "QQ==" + "QUJD" * 20_000])
def test_invalid_long_base64_is_a_422(intake: IntakeApp, bad: str) -> None:
    body = {**sample("1393-CVT-CL"), "attachments": [{"filename": "a.bin", "content_type": "text/plain"}]}
    body["attachments"][0]["content_base64"] = bad
    problem = problem_of(intake.post_json(body), 422)
    assert "attachments[0].content_base64" in problem["errors"]
    intake.assert_nothing_stored()


def test_large_uploads_beyond_the_bound_get_503_with_retry_after(intake: IntakeApp) -> None:
    slots = intake.deps.large_uploads
    held = 0
    while slots.acquire(blocking=False):  # every slot busy with another large upload
        held += 1
    try:
        body = with_file(sample("1393-CVT-CL"), minimal_pdf("y" * (9 * 1024 * 1024)))
        response = intake.post_json(body)
        problem = problem_of(response, 503)
        assert response.headers["Retry-After"] == "5"
        assert problem["type"].endswith("/too-many-large-uploads")
        # A small submission still goes through.
        assert intake.post_json(sample("171-CV-BTGTU")).status_code == 201
    finally:
        for _ in range(held):
            slots.release()
    assert held == intake.deps.settings.max_large_uploads


def test_the_slot_is_given_back_after_a_refusal(intake: IntakeApp) -> None:
    body = with_file(sample("1393-CVT-CL"), b"x" * (9 * 1024 * 1024), filename="a.pdf")
    for _ in range(3):
        assert intake.post_json(body).status_code in (413, 422)
    assert intake.deps.large_uploads.acquire(blocking=False)
    intake.deps.large_uploads.release()


@pytest.fixture
def big_intake(tmp_path) -> IntakeApp:
    """Intake with an 8 MiB file limit (the shared fixture's is 64 KiB)."""
    built = build_intake_app(
        intake_environ(tmp_path / "big", DOCROUTE_INTAKE_MAX_UPLOAD_BYTES=str(8 * 1024 * 1024))
    )
    yield built
    built.deps.engine.dispose()


def test_large_files_are_spooled_to_disk_and_closed_after_the_request(
    big_intake: IntakeApp, monkeypatch
) -> None:
    intake = big_intake
    data = minimal_pdf("z" * (2 * 1024 * 1024))  # above the in-memory limit: written to a temporary file
    blobs = []
    real_put = intake.deps.staging.put

    def put(key, blob, **kwargs):
        blobs.append(blob)
        assert blob.on_disk  # held on disk, not in memory, while it is staged
        return real_put(key, blob, **kwargs)

    monkeypatch.setattr(intake.deps.staging, "put", put)
    response = intake.post_multipart(sample("1393-CVT-CL"), [(data, "Công văn.pdf", "application/pdf")])
    assert response.status_code == 201, response.get_json()
    encoded = with_file(sample("171-CV-BTGTU"), data)
    assert intake.post_json(encoded).status_code == 201
    assert len(blobs) == 2
    assert all(blob.closed for blob in blobs)  # the temporary files are gone with the request
    for created in (response.get_json(),):
        assert intake.client.get(created["attachments"][0]["url"], headers=intake.auth()).data == data


def test_a_body_that_is_one_long_string_is_refused(intake: IntakeApp) -> None:
    body = b'"' + b"QUJD" * 30_000 + b'"'
    response = intake.client.post(
        "/v1/directives", data=body, content_type="application/json", headers=intake.auth()
    )
    assert "_body" in problem_of(response, 422)["errors"]


@pytest.mark.parametrize("chunking", [1, 3, 7])
def test_the_stream_reader_gives_the_same_document_whatever_the_chunk_boundaries(chunking: int) -> None:
    from intake.api.json_stream import read_json_stream

    document = {
        "a": 'x\\"y',
        "b": ["é", "\\/", "\u00e9\U0001f4c4"],
        "c": {"d": 1.5e3, "e": None},
        "f": "Q" * 80,
    }
    text = json.dumps(document, ensure_ascii=True).encode()
    pieces = [text[i : i + chunking] for i in range(0, len(text), chunking)]
    pieces.reverse()

    def read(_size: int) -> bytes:
        return pieces.pop() if pieces else b""

    result = read_json_stream(read, long_string=64)
    assert result.document == {**document, "f": ""}
    (spooled,) = result.spooled.values()
    assert list(result.spooled) == ["f"]
    assert spooled.error is None
    assert spooled.blob.reader().read() == base64.b64decode("Q" * 80)
    result.close()


def test_metadata_over_its_own_limit_is_a_413_before_parsing(big_intake: IntakeApp) -> None:
    body = {**sample("1393-CVT-CL"), "to_places": ["Sở"] * 500_000}  # ~4 MiB of short strings
    problem = problem_of(big_intake.post_json(body), 413)
    assert problem["type"].endswith("/metadata-too-large")
    big_intake.assert_nothing_stored()
