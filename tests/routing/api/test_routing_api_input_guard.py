"""Routing gets the shared layer's input refusals: unknown query parameters, page overflow, bad JSON text."""

from __future__ import annotations

import pytest
from routing_testkit import RoutingApp


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    assert response.content_type == "application/problem+json"
    return response.get_json()


def test_unknown_query_parameter_is_refused_naming_it(rapp: RoutingApp) -> None:
    response = rapp.client.get("/v1/directives?state=routed", headers=rapp.auth("clerk"))
    body = _problem(response, 400)
    assert list(body["errors"]) == ["state"]
    assert "status" in body["errors"]["state"][0]  # names what the operation does accept


def test_declared_filters_still_work(rapp: RoutingApp) -> None:
    response = rapp.client.get("/v1/directives?status=routed&page=1", headers=rapp.auth("clerk"))
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/directives", "/v1/units", "/v1/rules/versions", "/v1/overdue"])
def test_page_that_overflows_the_offset_is_a_4xx(rapp: RoutingApp, path: str) -> None:
    response = rapp.client.get(f"{path}?page=100000000000000000", headers=rapp.auth("admin"))
    assert 400 <= response.status_code < 500
    assert response.content_type == "application/problem+json"


def test_lone_surrogate_in_a_json_body_is_a_400(rapp: RoutingApp) -> None:
    response = rapp.client.post(
        "/v1/rules:evaluate",
        data=b'{"subject": "\\ud800", "issuer": "x"}',
        content_type="application/json",
        headers=rapp.auth("clerk"),
    )
    assert "subject" in _problem(response, 400)["errors"]


def test_deeply_nested_json_body_is_a_4xx(rapp: RoutingApp) -> None:
    response = rapp.client.post(
        "/v1/rules:evaluate",
        data=b'{"subject": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        content_type="application/json",
        headers=rapp.auth("clerk"),
    )
    assert 400 <= response.status_code < 500
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("path", ["/v1/rules", "/v1/units:import"])
def test_deeply_nested_yaml_is_refused_not_a_500(rapp: RoutingApp, path: str) -> None:
    method = rapp.client.put if path == "/v1/rules" else rapp.client.post
    response = method(
        path, data=b"a: " + b"[" * 100_000, headers=rapp.auth("admin") | {"Content-Type": "application/yaml"}
    )
    # Routing's document reader refuses the nesting as it reads, before any parser could recurse.
    problem = _problem(response, 422)
    assert "nested deeper than" in problem["errors"]["body"][0]


def test_a_refusal_quoting_a_lone_surrogate_is_not_a_500(rapp: RoutingApp) -> None:
    response = rapp.client.put(
        "/v1/rules",
        data=b'version: 1\nrules:\n  - id: "x\\ud800"\n',
        headers=rapp.auth("admin") | {"Content-Type": "application/yaml"},
    )
    assert 400 <= response.status_code < 500
    assert response.get_json() is not None
