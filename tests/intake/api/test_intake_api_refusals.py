"""Every refusal of POST /v1/directives answers problem+json naming the field and stores nothing."""

from __future__ import annotations

import base64
import json

import pytest
from intake_testing import IntakeApp, minimal_pdf, sample
from shared.auth import issue_token


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status
    assert {"type", "title", "status"} <= set(problem)
    return problem


def without(body: dict, *path: str) -> dict:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copy


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: without(b, "issuer", "name"), "issuer.name"),
        (lambda b: without(b, "issuer"), "issuer"),
        (lambda b: without(b, "number"), "number"),
        (lambda b: without(b, "issued_date"), "issued_date"),
        (lambda b: {**b, "issued_date": "08/04/2021x"}, "issued_date"),
        (lambda b: {**b, "number": "công văn số mười"}, "number"),
        (lambda b: {**b, "number": "1393"}, "number"),
        (lambda b: {**b, "subject": "x" * 501}, "subject"),
        (lambda b: {**b, "issuer": {"name": "Cục Viễn thông", "code": "g22 lower"}}, "issuer.code"),
        (lambda b: {**b, "urgency": "rat_khan"}, "urgency"),
        (lambda b: {**b, "document_type": "ZZQ"}, "document_type"),
        (lambda b: {**b, "due_date": "2021-01-01"}, "due_date"),
        (lambda b: {**b, "to_places": "not a list"}, "to_places"),
        (lambda b: {**b, "page_amount": "ba"}, "page_amount"),
    ],
)
def test_missing_or_malformed_metadata_is_422_naming_the_field(intake: IntakeApp, mutate, field: str) -> None:
    problem = problem_of(intake.post_json(mutate(sample("1393-CVT-CL"))), 422)
    assert field in problem["errors"], problem
    assert all(isinstance(m, str) for m in problem["errors"][field])
    intake.assert_nothing_stored()


def test_the_same_field_names_are_used_for_multipart_metadata(intake: IntakeApp) -> None:
    problem = problem_of(intake.post_multipart(without(sample("1393-CVT-CL"), "issuer", "name"), []), 422)
    assert "issuer.name" in problem["errors"]
    intake.assert_nothing_stored()


@pytest.mark.parametrize("level", ["mat", "toi_mat", "tuyet_mat"])
def test_state_secret_documents_are_refused_with_the_reason(intake: IntakeApp, level: str) -> None:
    body = {**sample("1393-CVT-CL"), "confidentiality": level}
    body["attachments"] = [
        {
            "filename": "mat.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(minimal_pdf()).decode(),
        }
    ]
    problem = problem_of(intake.post_json(body), 422)
    [message] = problem["errors"]["confidentiality"]
    assert "Luật Bảo vệ bí mật nhà nước" in message
    assert "QCVN 102" in message
    assert problem["type"].endswith("/state-secret-refused")
    intake.assert_nothing_stored()


def test_a_declared_pdf_that_is_not_a_pdf_is_refused_multipart(intake: IntakeApp) -> None:
    files = [
        (minimal_pdf(), "ok.pdf", "application/pdf"),
        (b"MZ\x90\x00 not a pdf", "fake.pdf", "application/pdf"),
    ]
    problem = problem_of(intake.post_multipart(sample("1393-CVT-CL"), files), 422)
    assert list(problem["errors"]) == ["files[1]"]
    intake.assert_nothing_stored()


def test_a_declared_pdf_that_is_not_a_pdf_is_refused_json(intake: IntakeApp) -> None:
    body = {
        **sample("1393-CVT-CL"),
        "attachments": [
            {
                "filename": "x.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(b"<html>").decode(),
            }
        ],
    }
    problem = problem_of(intake.post_json(body), 422)
    assert list(problem["errors"]) == ["attachments[0]"]
    intake.assert_nothing_stored()


def test_a_file_over_the_limit_is_413(intake: IntakeApp) -> None:
    big = b"%PDF-1.4\n" + b"0" * (64 * 1024) + b"\n%%EOF\n"
    problem = problem_of(
        intake.post_multipart(sample("1393-CVT-CL"), [(big, "big.pdf", "application/pdf")]), 413
    )
    assert "files[0]" in problem["errors"]
    intake.assert_nothing_stored()


def test_a_request_over_the_whole_body_cap_is_413(intake: IntakeApp) -> None:
    huge = b"x" * (intake.deps.settings.max_request_bytes + 10)
    response = intake.post_multipart(sample("1393-CVT-CL"), [(huge, "huge.bin", "application/octet-stream")])
    problem_of(response, 413)
    intake.assert_nothing_stored()


def test_bad_base64_is_422(intake: IntakeApp) -> None:
    body = {
        **sample("1393-CVT-CL"),
        "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "content_base64": "***"}],
    }
    problem = problem_of(intake.post_json(body), 422)
    assert "attachments[0].content_base64" in problem["errors"]
    intake.assert_nothing_stored()


@pytest.mark.parametrize(
    ("data", "content_type", "field"),
    [
        (b"{not json", "application/json", "_body"),
        (b"[1, 2]", "application/json", "_body"),
    ],
)
def test_malformed_json_bodies_are_422(intake: IntakeApp, data: bytes, content_type: str, field: str) -> None:
    response = intake.client.post(
        "/v1/directives", data=data, content_type=content_type, headers=intake.auth("clerk")
    )
    assert field in problem_of(response, 422)["errors"]
    intake.assert_nothing_stored()


def test_multipart_without_metadata_or_with_broken_json_is_422(intake: IntakeApp) -> None:
    response = intake.client.post(
        "/v1/directives", data={"other": "x"}, content_type="multipart/form-data", headers=intake.auth()
    )
    assert "metadata" in problem_of(response, 422)["errors"]
    assert "metadata" in problem_of(intake.post_multipart("{oops", []), 422)["errors"]
    intake.assert_nothing_stored()


def test_an_unsupported_content_type_is_415(intake: IntakeApp) -> None:
    response = intake.client.post(
        "/v1/directives", data="<edXML/>", content_type="application/xml", headers=intake.auth()
    )
    problem_of(response, 415)
    intake.assert_nothing_stored()


def test_no_token_and_bad_tokens_are_401(intake: IntakeApp) -> None:
    body = json.dumps(sample("1393-CVT-CL"))
    problem_of(intake.client.post("/v1/directives", data=body, content_type="application/json"), 401)
    forged = issue_token("another-secret-0123456789abcdef0123", sub="x", roles=["submitter"])
    for header in (f"Bearer {forged}", "Bearer garbage", "Basic dXNlcjpwYXNz"):
        response = intake.client.post(
            "/v1/directives", data=body, content_type="application/json", headers={"Authorization": header}
        )
        problem_of(response, 401)
    intake.assert_nothing_stored()


@pytest.mark.parametrize("role", ["unit", "auditor", "admin"])
def test_roles_other_than_submitter_or_clerk_cannot_submit(intake: IntakeApp, role: str) -> None:
    problem_of(intake.post_json(sample("1393-CVT-CL"), role=role), 403)
    intake.assert_nothing_stored()


def test_a_malformed_idempotency_key_is_422(intake: IntakeApp) -> None:
    problem = problem_of(intake.post_json(sample("1393-CVT-CL"), headers={"Idempotency-Key": "x" * 300}), 422)
    assert "Idempotency-Key" in problem["errors"]
    intake.assert_nothing_stored()
