"""POST /v1/directives with hand-built multipart/form-data bodies: the splitter keeps werkzeug's rules for
part headers (Vietnamese file names raw or as filename*=UTF-8''…), and refuses broken bodies with a
problem naming the field, storing nothing."""

from __future__ import annotations

import json
from urllib.parse import quote

from intake_testing import IntakeApp, minimal_pdf, sample

BOUNDARY = "----docroute-test-ranh-gioi-7f3a"


def _part(headers: list[str], data: bytes) -> bytes:
    return f"--{BOUNDARY}\r\n".encode() + "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + data + b"\r\n"


def _metadata(name: str = "120-KH-BCD") -> bytes:
    text = json.dumps(sample(name), ensure_ascii=False).encode("utf-8")
    return _part(['Content-Disposition: form-data; name="metadata"'], text)


def _post(intake: IntakeApp, body: bytes, *, boundary: str | None = BOUNDARY, close: bool = True):
    if close:
        body += f"--{BOUNDARY}--\r\n".encode()
    content_type = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    return intake.client.post("/v1/directives", data=body, content_type=content_type, headers=intake.auth())


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    return response.get_json()


def test_raw_utf8_and_rfc5987_file_names_both_arrive_intact(intake: IntakeApp) -> None:
    pdf = minimal_pdf("kh")
    body = _metadata()
    body += _part(
        [
            'Content-Disposition: form-data; name="files"; filename="Kế hoạch 120-KH-BCĐ.pdf"',
            "Content-Type: application/pdf",
        ],
        pdf,
    )
    body += _part(
        [
            'Content-Disposition: form-data; name="files"; filename="x.txt"; '
            f"filename*=UTF-8''{quote('Phụ lục đính kèm.txt')}",
            "Content-Type: Text/Plain; charset=utf-8",
        ],
        "Đã đọc".encode(),
    )
    # Named "files" but not a file (no filename): a form field, as werkzeug treats it, so not an attachment.
    body += _part(['Content-Disposition: form-data; name="files"'], b"not an attachment")
    response = _post(intake, body)
    assert response.status_code == 201, response.get_json()
    attachments = response.get_json()["attachments"]
    assert [(a["filename"], a["content_type"], a["size"]) for a in attachments] == [
        ("Kế hoạch 120-KH-BCĐ.pdf", "application/pdf", len(pdf)),
        ("Phụ lục đính kèm.txt", "text/plain", len("Đã đọc".encode())),
    ]
    assert len(intake.staged_objects()) == 2


def test_a_body_cut_before_its_closing_boundary_is_422_and_stores_nothing(intake: IntakeApp) -> None:
    body = _metadata() + _part(
        ['Content-Disposition: form-data; name="files"; filename="a.pdf"', "Content-Type: application/pdf"],
        minimal_pdf("a"),
    )
    problem = _problem(_post(intake, body[:-40], close=False), 422)
    assert "_body" in problem["errors"]
    assert intake.count_rows("directives") == 0
    assert intake.staged_objects() == []


def test_no_boundary_and_a_part_without_a_name_are_422_naming_the_body(intake: IntakeApp) -> None:
    assert "boundary" in " ".join(_problem(_post(intake, _metadata(), boundary=None), 422)["errors"]["_body"])
    nameless = _part(["Content-Disposition: form-data"], b"x") + _metadata()
    assert "_body" in _problem(_post(intake, nameless), 422)["errors"]


def test_a_part_header_that_is_not_utf8_is_422(intake: IntakeApp) -> None:
    bad = (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="files"; filename="k\xe1.pdf"\r\n\r\n'
    )
    problem = _problem(_post(intake, _metadata() + bad + b"%PDF-1.4\r\n"), 422)
    assert "_body" in problem["errors"]


def test_metadata_that_is_not_utf8_is_422_naming_it(intake: IntakeApp) -> None:
    body = _part(['Content-Disposition: form-data; name="metadata"'], b'{"subject": "V\xe1n b\xe1n"}')
    assert "metadata" in _problem(_post(intake, body), 422)["errors"]


def test_form_limits_still_apply(intake: IntakeApp) -> None:
    too_many = _metadata() + b"".join(
        _part([f'Content-Disposition: form-data; name="f{i}"'], b"x") for i in range(1001)
    )
    _problem(_post(intake, too_many), 413)
    huge_field = _part(['Content-Disposition: form-data; name="note"'], b"x" * 600_000) + _metadata()
    _problem(_post(intake, huge_field), 413)
    assert intake.count_rows("directives") == 0
