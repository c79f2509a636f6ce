"""Archive gets the shared layer's input refusals: unknown query parameters, page overflow, far-off dates."""

from __future__ import annotations

import pytest


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    assert response.content_type == "application/problem+json"
    return response.get_json()


def test_misnamed_filter_is_refused_not_ignored(client, auth) -> None:
    # The filter is `directive`; `directive_id` used to answer every record with a 200.
    body = _problem(client.get("/v1/records?directive_id=dir-1", headers=auth()), 400)
    assert list(body["errors"]) == ["directive_id"]
    assert "directive" in body["errors"]["directive_id"][0]
    assert client.get("/v1/records?directive=dir-1", headers=auth()).status_code == 200


@pytest.mark.parametrize("path", ["/v1/records", "/v1/audit", "/v1/fixity/runs"])
def test_page_that_overflows_the_offset_is_refused(client, auth, path) -> None:
    body = _problem(client.get(f"{path}?page=100000000000000000", headers=auth()), 422)
    assert "page" in body["errors"]


def test_since_before_year_one_in_utc_is_refused(client, auth) -> None:
    body = _problem(client.get("/v1/audit?since=0001-01-01T00:00:00%2B14:00", headers=auth()), 422)
    assert "since" in body["errors"]


def test_nul_in_q_is_refused(client, auth) -> None:
    assert "q" in _problem(client.get("/v1/records?q=a%00b", headers=auth()), 400)["errors"]
