"""Who may touch which task: a unit claim wins over staff roles, auditors never write, deactivation bites."""

import pytest
from routing import dispatch
from routing_testkit import SECRET, registered_event
from shared.auth import issue_token


@pytest.fixture
def loaded(rapp):
    rapp.load_samples()
    return rapp


def route(rapp, name):
    event = registered_event(name)
    dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    rapp.relay()
    return event.payload["directive_id"]


def mixed(roles, unit=None):
    return {"Authorization": f"Bearer {issue_token(SECRET, sub='mixed', roles=roles, unit=unit)}"}


def syt_task(rapp):
    r = rapp.client.post("/v1/units/SYT/tasks:poll", json={}, headers=rapp.auth("unit", "SYT"))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"][0]


@pytest.mark.parametrize("staff_role", ["clerk", "auditor", "admin"])
def test_a_unit_claim_beside_a_staff_role_acts_as_that_unit_on_tasks(loaded, staff_role):
    directive = route(loaded, "120-KH-BCD.json")
    task = syt_task(loaded)
    # A CTTDT token that also says clerk/auditor/admin: before, it was staff and could move SYT's task.
    token = mixed(["unit", staff_role], unit="CTTDT")
    for method, path, kw in [
        ("get", f"/v1/tasks/{task['id']}", {}),
        ("post", f"/v1/tasks/{task['id']}/ack", {}),
        ("post", f"/v1/tasks/{task['id']}/status", {"json": {"status": "in_progress"}}),
        ("post", "/v1/units/SYT/tasks:ack", {"json": {"ids": [task["id"]]}}),
        ("post", "/v1/units/SYT/tasks:poll", {"json": {}}),
        ("get", "/v1/units/SYT/tasks", {}),
    ]:
        r = getattr(loaded.client, method)(path, headers=token, **kw)
        # Auditor + unit is refused before anything (auditors never write); the others hear "not found".
        expected = 403 if staff_role == "auditor" and method == "post" else 404
        assert r.status_code == expected, (path, r.get_json())
    # Staff views over every unit's tasks are closed to a token with a unit claim.
    for path in [f"/v1/directives/{directive}/progress", "/v1/directives", "/v1/overdue"]:
        assert loaded.client.get(path, headers=token).status_code == 403, path
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments",
        json={"assignments": [{"unit": "SYT", "cancel": True}]},
        headers=mixed(["clerk"], unit="CTTDT"),
    )
    assert r.status_code == 403
    # Nothing moved: SYT's task is as SYT left it.
    r = loaded.client.get(f"/v1/tasks/{task['id']}", headers=loaded.auth("clerk"))
    assert r.get_json()["status"] == "assigned" and len(r.get_json()["history"]) == 1


def test_the_unit_claim_still_reaches_its_own_tasks_with_staff_roles_beside_it(loaded):
    route(loaded, "120-KH-BCD.json")
    task = syt_task(loaded)
    token = mixed(["unit", "clerk"], unit="SYT")
    assert loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=token).status_code == 200
    assert loaded.client.get("/v1/units/SYT/tasks", headers=token).get_json()["total"] == 1


def test_auditors_never_write_even_with_a_managers_role(loaded):
    directive = route(loaded, "120-KH-BCD.json")
    token = mixed(["auditor", "clerk"])
    assert loaded.client.delete("/v1/units/SYT", headers=token).status_code == 403
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments",
        json={"assignments": [{"unit": "SYT", "cancel": True}]},
        headers=token,
    )
    assert r.status_code == 403 and r.content_type == "application/problem+json"
    assert loaded.client.get("/v1/units/SYT", headers=loaded.auth("clerk")).get_json()["active"] is True
    # Reading stays open to them.
    assert loaded.client.get(f"/v1/directives/{directive}/progress", headers=token).status_code == 200


def test_a_deactivated_units_token_is_refused_before_it_expires(loaded):
    route(loaded, "120-KH-BCD.json")
    task = syt_task(loaded)
    unit = loaded.auth("unit", "SYT")
    assert loaded.client.get("/v1/units/SYT/tasks", headers=unit).status_code == 200
    assert loaded.client.delete("/v1/units/SYT", headers=loaded.auth("clerk")).status_code == 200
    for method, path in [
        ("get", "/v1/units/SYT/tasks"),
        ("post", "/v1/units/SYT/tasks:poll"),
        ("get", f"/v1/tasks/{task['id']}"),
        ("post", f"/v1/tasks/{task['id']}/ack"),
        ("get", f"/v1/tasks/{task['id']}/attachments/a1"),
    ]:
        r = getattr(loaded.client, method)(path, headers=unit, **({"json": {}} if method == "post" else {}))
        assert r.status_code == 403, (path, r.get_json())
        assert r.content_type == "application/problem+json"
        assert r.get_json()["type"].endswith("unit-deactivated")
    # Staff still read the unit's ledger (its tasks and history stay).
    assert loaded.client.get("/v1/units/SYT/tasks", headers=loaded.auth("auditor")).status_code == 200
