"""POST /v1/units/{code}/tasks:ack on SQLite and kombu memory: outcomes per id, access, validation."""

import json
import uuid

import pytest
import sqlalchemy as sa
from routing import dispatch
from routing.adapters import tables as t
from routing_testkit import registered_event


@pytest.fixture
def loaded(rapp):
    rapp.load_samples()
    return rapp


def assigned(rapp, assignments):
    """A directive no rule matches, assigned by a clerk: {unit: role}; answers {unit: task id}."""
    event = registered_event("1393-CVT-CL.json")
    event.payload["metadata"]["issuer"] = {"name": "Sở Tài chính"}
    dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    directive = event.payload["directive_id"]
    r = rapp.client.post(
        f"/v1/directives/{directive}/assignments",
        json={"assignments": [{"unit": unit, "role": role} for unit, role in assignments.items()]},
        headers=rapp.auth("clerk"),
    )
    assert r.status_code == 200, r.get_json()
    return directive, {x["unit"]: x["task_id"] for x in r.get_json()["tasks"]}


def batch_ack(rapp, unit, ids, *, token_unit=None):
    return rapp.client.post(
        f"/v1/units/{unit}/tasks:ack", json={"ids": ids}, headers=rapp.auth("unit", token_unit or unit)
    )


def status_of(rapp, task_id):
    with rapp.deps.engine.connect() as conn:
        return conn.execute(sa.select(t.tasks.c.status).where(t.tasks.c.id == task_id)).scalar_one()


def outbox_events(rapp):
    with rapp.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body).order_by(t.outbox.c.id)).scalars().all()
    return [json.loads(bytes(b)) for b in bodies]


def status_events(rapp):
    """Every status change announced, in order: an acknowledgement's changes travel in one event."""
    changes = []
    for event in outbox_events(rapp):
        if event["type"] == "routing.task_status_changed":
            changes.append(event["payload"])
        elif event["type"] == "routing.tasks_acknowledged":
            changes.extend(event["payload"]["changes"])
    return changes


def test_batch_ack_receives_own_tasks_and_reports_every_id(loaded):
    _, first = assigned(loaded, {"CTTDT": "chu_tri", "SYT": "phoi_hop"})
    _, second = assigned(loaded, {"CTTDT": "phoi_hop"})
    missing = str(uuid.uuid4())
    ids = [first["CTTDT"], missing, first["SYT"], second["CTTDT"], first["CTTDT"]]
    r = batch_ack(loaded, "CTTDT", ids)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    # One outcome per distinct id, in request order; another unit's task answers like a missing one.
    assert [(x["id"], x["result"], x["status"]) for x in body["items"]] == [
        (first["CTTDT"], "acked", "received"),
        (missing, "not_found", None),
        (first["SYT"], "not_found", None),
        (second["CTTDT"], "acked", "received"),
    ]
    assert body["counts"] == {"acked": 2, "unchanged": 0, "conflict": 0, "not_found": 2}
    assert status_of(loaded, first["SYT"]) == "assigned"  # not touched
    task = loaded.client.get(f"/v1/tasks/{first['CTTDT']}", headers=loaded.auth("unit", "CTTDT")).get_json()
    assert task["status"] == "received" and task["lease_expires_at"] is None
    assert [(h["from_status"], h["to_status"]) for h in task["history"]] == [
        (None, "assigned"),
        ("assigned", "received"),
    ]
    events = status_events(loaded)
    assert sorted(e["task_id"] for e in events) == sorted([first["CTTDT"], second["CTTDT"]])
    # Both changes in one message for the archive, none on their own.
    types = [e["type"] for e in outbox_events(loaded)]
    assert types.count("routing.tasks_acknowledged") == 1 and "routing.task_status_changed" not in types
    # The event carries the task document as a read gives it, like the single ack's.
    event = next(e for e in events if e["task_id"] == first["CTTDT"])
    assert event["from_status"] == "assigned" and event["status"] == "received"
    assert event["actor"] == "t-unit-CTTDT" and event["task"]["status"] == "received"
    task.pop("history")
    assert {k: v for k, v in event["task"].items() if k != "overdue"} == {
        k: v for k, v in task.items() if k != "overdue"
    }


def test_batch_ack_is_idempotent(loaded):
    _, tasks = assigned(loaded, {"CTTDT": "chu_tri"})
    task_id = tasks["CTTDT"]
    assert batch_ack(loaded, "CTTDT", [task_id]).get_json()["items"][0]["result"] == "acked"
    again = batch_ack(loaded, "CTTDT", [task_id]).get_json()
    assert again["items"] == [{"id": task_id, "result": "unchanged", "status": "received", "detail": None}]
    # The single ack agrees: the task is received, nothing new recorded.
    single = loaded.client.post(f"/v1/tasks/{task_id}/ack", headers=loaded.auth("unit", "CTTDT"))
    assert single.status_code == 200 and single.get_json()["status"] == "received"
    assert [h["to_status"] for h in single.get_json()["history"]] == ["assigned", "received"]
    assert len(status_events(loaded)) == 1
    loaded.client.post(
        f"/v1/tasks/{task_id}/status", json={"status": "in_progress"}, headers=loaded.auth("unit", "CTTDT")
    )
    later = batch_ack(loaded, "CTTDT", [task_id]).get_json()["items"][0]
    assert (later["result"], later["status"]) == ("unchanged", "in_progress")


def test_de_biet_tasks_complete_on_receipt_and_finish_their_directive(loaded):
    directive, tasks = assigned(loaded, {"CTTDT": "de_biet"})
    body = batch_ack(loaded, "CTTDT", [tasks["CTTDT"]]).get_json()
    assert body["items"][0]["result"] == "acked" and body["items"][0]["status"] == "completed"
    history = loaded.client.get(
        f"/v1/tasks/{tasks['CTTDT']}", headers=loaded.auth("unit", "CTTDT")
    ).get_json()["history"]
    assert [(h["to_status"], h["note"]) for h in history] == [
        ("assigned", None),
        ("received", None),
        ("completed", "for information"),
    ]
    assert [(e["from_status"], e["status"]) for e in status_events(loaded)] == [
        ("assigned", "received"),
        ("received", "completed"),
    ]
    progress = loaded.client.get(
        f"/v1/directives/{directive}/progress", headers=loaded.auth("clerk")
    ).get_json()
    assert progress["status"] == "completed"


def test_rejected_or_cancelled_tasks_answer_conflict_without_failing_the_batch(loaded):
    directive, tasks = assigned(loaded, {"CTTDT": "chu_tri"})
    _, other = assigned(loaded, {"CTTDT": "phoi_hop"})
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments",
        json={"assignments": [{"unit": "CTTDT", "cancel": True}]},
        headers=loaded.auth("clerk"),
    )
    assert r.status_code == 200
    body = batch_ack(loaded, "CTTDT", [tasks["CTTDT"], other["CTTDT"]]).get_json()
    assert [(x["result"], x["status"]) for x in body["items"]] == [
        ("conflict", "cancelled"),
        ("acked", "received"),
    ]
    assert body["items"][0]["detail"] == "the task is cancelled"
    # The single ack answers the same task with 409.
    single = loaded.client.post(f"/v1/tasks/{tasks['CTTDT']}/ack", headers=loaded.auth("unit", "CTTDT"))
    assert single.status_code == 409 and single.mimetype == "application/problem+json"


def test_only_the_units_own_account_may_batch_ack(loaded):
    _, tasks = assigned(loaded, {"CTTDT": "chu_tri"})
    ids = {"ids": [tasks["CTTDT"]]}
    for role in ("auditor", "clerk", "admin"):
        r = loaded.client.post("/v1/units/CTTDT/tasks:ack", json=ids, headers=loaded.auth(role))
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert loaded.client.post("/v1/units/CTTDT/tasks:ack", json=ids).status_code == 401
    # Another unit's account hears what it would for a unit that does not exist.
    foreign = batch_ack(loaded, "CTTDT", [tasks["CTTDT"]], token_unit="SYT")
    absent = batch_ack(loaded, "NOPE", [tasks["CTTDT"]], token_unit="SYT")
    assert foreign.status_code == absent.status_code == 404
    assert foreign.get_json()["title"] == absent.get_json()["title"]
    # A unit account of a unit routing does not know.
    assert batch_ack(loaded, "NOPE", [tasks["CTTDT"]]).status_code == 404
    assert status_of(loaded, tasks["CTTDT"]) == "assigned"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ids"),
        ({"ids": []}, "ids"),
        ({"ids": "abc"}, "ids"),
        ({"ids": [str(uuid.uuid4()) for _ in range(101)]}, "ids"),
        ({"ids": [str(uuid.uuid4()), 5]}, "ids.1"),
        ({"ids": [""]}, "ids.0"),
        ({"ids": ["x" * 65]}, "ids.0"),
        ({"ids": [str(uuid.uuid4())], "max": 3}, "max"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(loaded, body, field):
    r = loaded.client.post("/v1/units/CTTDT/tasks:ack", json=body, headers=loaded.auth("unit", "CTTDT"))
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert field in r.get_json()["errors"], r.get_json()


def test_a_full_batch_of_100_is_accepted(loaded):
    _, tasks = assigned(loaded, {"CTTDT": "chu_tri"})
    ids = [tasks["CTTDT"], *(str(uuid.uuid4()) for _ in range(99))]
    body = batch_ack(loaded, "CTTDT", ids).get_json()
    assert body["counts"] == {"acked": 1, "unchanged": 0, "conflict": 0, "not_found": 99}
