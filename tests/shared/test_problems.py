"""problem+json rendering: Problem, werkzeug errors, webargs validation, error-table and unknown errors."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from shared.problems import Problem, flatten_validation_messages, render_problem, to_problem
from werkzeug.exceptions import MethodNotAllowed, NotFound, UnsupportedMediaType


@pytest.fixture
def ctx():
    with Flask(__name__).test_request_context():
        yield


class Overdue(Exception):
    field = None


class Duplicate(Exception):
    def __init__(self, msg: str, field: str) -> None:
        super().__init__(msg)
        self.field = field


class SpecialDuplicate(Duplicate):
    pass


TABLE = {
    Overdue: (409, "task-overdue", "Task overdue"),
    Duplicate: (409, "duplicate", "Duplicate"),
    SpecialDuplicate: (422, "special", "Special"),
}


def body_of(response) -> dict:
    assert response.content_type == "application/problem+json"
    return json.loads(response.get_data(as_text=True))


def test_problem_renders_rfc9457_members_and_keeps_vietnamese(ctx):
    response = render_problem(Problem(409, "Trùng số đến", "Số đến 15 đã dùng", type="duplicate-arrival"))
    assert response.status_code == 409
    assert "Trùng số đến".encode() in response.data
    assert body_of(response) == {
        "type": "https://docroute.example/problems/duplicate-arrival",
        "title": "Trùng số đến",
        "status": 409,
        "detail": "Số đến 15 đã dùng",
    }


def test_extra_members_cannot_override_rfc_members(ctx):
    body = body_of(render_problem(Problem(400, "Bad", extra={"status": 200, "hint": "x"})))
    assert body["status"] == 400 and body["hint"] == "x"


def test_problem_headers_are_sent(ctx):
    response = render_problem(Problem(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"}))
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (NotFound(), 404, "not-found"),
        (MethodNotAllowed(valid_methods=["GET"]), 405, "method-not-allowed"),
        (UnsupportedMediaType(), 415, "unsupported-media-type"),
    ],
)
def test_werkzeug_errors_become_problems(ctx, exc, status, slug):
    response = render_problem(exc)
    body = body_of(response)
    assert response.status_code == status
    assert body["type"] == f"https://docroute.example/problems/{slug}"


def test_method_not_allowed_keeps_the_allow_header(ctx):
    assert render_problem(MethodNotAllowed(valid_methods=["GET", "POST"])).headers["Allow"] == "GET, POST"


def test_validation_messages_are_flattened_across_locations_and_nesting():
    messages = {
        "json": {
            "subject": ["Missing data for required field."],
            "issuer": {"name": ["Not a valid string."], "_schema": ["Bad issuer."]},
            "attachments": {0: {"sha256": ["Invalid."]}},
        },
        "query": {"page": ["Must be at least 1."]},
    }
    assert flatten_validation_messages(messages) == {
        "subject": ["Missing data for required field."],
        "issuer.name": ["Not a valid string."],
        "issuer": ["Bad issuer."],
        "attachments.0.sha256": ["Invalid."],
        "page": ["Must be at least 1."],
    }


def test_location_level_messages_keep_the_location_name():
    assert flatten_validation_messages({"json": ["Invalid JSON body."]}) == {"json": ["Invalid JSON body."]}


def test_error_table_uses_the_most_specific_class_and_field():
    problem = to_problem(SpecialDuplicate("again", "number"), TABLE)
    assert (problem.status, problem.type, problem.title) == (
        422,
        "https://docroute.example/problems/special",
        "Special",
    )
    assert problem.errors == {"number": ["again"]}
    base = to_problem(Duplicate("số trùng", "arrival_number"), TABLE)
    assert base.status == 409 and base.errors == {"arrival_number": ["số trùng"]}


def test_error_table_entry_with_none_field_has_no_errors():
    problem = to_problem(Overdue("late"), TABLE)
    assert problem.detail == "late" and problem.errors is None


def test_unknown_exception_is_a_generic_500(caplog):
    problem = to_problem(KeyError("password=hunter2"), TABLE)
    assert problem.status == 500
    assert "hunter2" not in json.dumps(problem.body())
    assert any("KeyError" in r.getMessage() for r in caplog.records)


def test_a_problem_quoting_an_unpaired_surrogate_still_renders() -> None:
    import json as _json

    from shared.problems import Problem

    response = Problem(
        422, "Invalid rule", "rule 'x\ud800' is invalid", errors={"id": ["x\ud800"]}
    ).to_response()
    assert response.status_code == 422
    body = _json.loads(response.get_data())
    assert body["detail"] == "rule 'x\ud800' is invalid"
    # Vietnamese text stays readable UTF-8 whenever it can.
    plain = Problem(422, "Sai", "Trích yếu không hợp lệ").to_response()
    assert "Trích yếu".encode() in plain.get_data()
