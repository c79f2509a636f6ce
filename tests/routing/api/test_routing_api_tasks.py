"""Tasks over HTTP on SQLite and kombu memory: routing, polling, acks, reports, access, deadlines."""

import hashlib
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from routing import deadlines, dispatch
from routing.adapters import tables as t
from routing.messages import TaskReminder, TasksAssigned
from routing_testkit import registered_event


@pytest.fixture
def loaded(rapp):
    rapp.load_samples()
    return rapp


def route(rapp, name, **kw):
    event = registered_event(name, **kw)
    dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    rapp.relay()
    return event.payload["directive_id"]


def poll(rapp, unit, **body):
    r = rapp.client.post(f"/v1/units/{unit}/tasks:poll", json=body, headers=rapp.auth("unit", unit))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def outbox_events(rapp, type_):
    with rapp.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body)).scalars().all()
    return [e for e in (json.loads(bytes(b)) for b in bodies) if e["type"] == type_]


def test_directive_becomes_one_task_per_unit_with_due_dates(loaded):
    directive = route(loaded, "1393-CVT-CL.json", arrival_date=date(2021, 4, 13))
    progress = loaded.client.get(
        f"/v1/directives/{directive}/progress", headers=loaded.auth("auditor")
    ).get_json()
    units = [x["unit"] for x in progress["tasks"]]
    assert len(units) == len(set(units)) == 24
    # 20 working days from Tue 13/4/2021, skipping Giỗ Tổ 21/4, 30/4 and the 3/5 substitute day.
    assert {x["due_date"] for x in progress["tasks"]} == {"2021-05-14"}
    assert progress["status"] == "routed" and progress["done"] is False
    assert progress["counts"] == {"assigned": 24}
    # Each task goes to its unit's queue; the archive gets one event carrying all 24.
    offered = outbox_events(loaded, "routing.task_offered")
    assert sorted(e["payload"]["unit"] for e in offered) == sorted(units)
    assert outbox_events(loaded, "routing.task_assigned") == []
    [assigned] = outbox_events(loaded, "routing.tasks_assigned")
    assert TasksAssigned().validate(assigned["payload"]) == {}
    tasks = assigned["payload"]["tasks"]
    assert assigned["payload"]["directive_id"] == directive
    assert [x["id"] for x in tasks] == [e["payload"]["id"] for e in offered]
    assert all(x["rule_id"] == "ispeed" and x["rule_version"] == 1 for x in tasks)
    assert tasks == [e["payload"] for e in offered]


def test_redelivered_event_creates_nothing_new(loaded):
    event = registered_event("171-CV-BTGTU.json")
    assert (
        len(dispatch.route_directive(event, engine=loaded.deps.engine, calendar=loaded.deps.calendar)) == 13
    )
    assert dispatch.route_directive(event, engine=loaded.deps.engine, calendar=loaded.deps.calendar) == []
    with loaded.deps.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.tasks)).scalar_one() == 13


def test_poll_leases_ack_receives_and_complete_finishes(loaded):
    directive = route(loaded, "171-CV-BTGTU.json")
    got = poll(loaded, "CTTDT", max=5)
    assert len(got["items"]) == 1
    task = got["items"][0]
    assert task["directive_id"] == directive and task["directive_number"] == "171-CV/BTGTU"
    assert task["issuer"]["name"] == "Ban Tuyên giáo Tỉnh ủy Bình Phước" and task["arrival_number"] == 1
    assert task["lease_expires_at"] is not None and task["role"] == "chu_tri"
    assert poll(loaded, "CTTDT")["items"] == []  # the message was acked once the lease was recorded
    unit = loaded.auth("unit", "CTTDT")
    r = loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=unit)
    assert r.get_json()["status"] == "received" and r.get_json()["lease_expires_at"] is None
    r = loaded.client.post(f"/v1/tasks/{task['id']}/status", json={"status": "in_progress"}, headers=unit)
    assert r.get_json()["status"] == "in_progress"
    r = loaded.client.post(
        f"/v1/tasks/{task['id']}/status",
        json={"status": "completed", "reply_number": "45/TTCNTT", "note": "Đã đăng tải"},
        headers=unit,
    )
    body = r.get_json()
    assert body["status"] == "completed" and body["reply_number"] == "45/TTCNTT"
    assert [h["to_status"] for h in body["history"]] == ["assigned", "received", "in_progress", "completed"]
    r = loaded.client.post(f"/v1/tasks/{task['id']}/status", json={"status": "in_progress"}, headers=unit)
    assert r.status_code == 409 and r.mimetype == "application/problem+json"
    [acked] = outbox_events(loaded, "routing.tasks_acknowledged")
    assert [(c["task_id"], c["status"]) for c in acked["payload"]["changes"]] == [(task["id"], "received")]
    changed = outbox_events(loaded, "routing.task_status_changed")
    assert [e["payload"]["status"] for e in changed] == ["in_progress", "completed"]


def test_progress_done_when_every_chu_tri_task_completed(loaded):
    directive = route(loaded, "171-CV-BTGTU.json")
    tasks = loaded.client.get(
        f"/v1/directives/{directive}/progress", headers=loaded.auth("clerk")
    ).get_json()["tasks"]
    for i, item in enumerate(tasks):
        unit = loaded.auth("unit", item["unit"])
        loaded.client.post(f"/v1/tasks/{item['task_id']}/ack", headers=unit)
        loaded.client.post(f"/v1/tasks/{item['task_id']}/status", json={"status": "completed"}, headers=unit)
        progress = loaded.client.get(
            f"/v1/directives/{directive}/progress", headers=loaded.auth("clerk")
        ).get_json()
        assert progress["done"] is (i == len(tasks) - 1)
    assert progress["counts"] == {"completed": 13} and progress["status"] == "completed"


def test_unit_cannot_touch_another_units_task_or_queue(loaded):
    route(loaded, "120-KH-BCD.json")
    syt_task = poll(loaded, "SYT")["items"][0]
    other = loaded.auth("unit", "CTTDT")
    missing = str(uuid.uuid4())
    for method, path, kw in [
        ("get", "/v1/tasks/{}", {}),
        ("post", "/v1/tasks/{}/ack", {}),
        ("post", "/v1/tasks/{}/status", {"json": {"status": "in_progress"}}),
        ("get", "/v1/tasks/{}/attachments/x", {}),
    ]:
        foreign = getattr(loaded.client, method)(path.format(syt_task["id"]), headers=other, **kw)
        absent = getattr(loaded.client, method)(path.format(missing), headers=other, **kw)
        assert foreign.status_code == absent.status_code == 404
        assert foreign.get_json()["title"] == absent.get_json()["title"]
    r = loaded.client.post("/v1/units/SYT/tasks:poll", json={}, headers=other)
    assert r.status_code == 404
    assert (
        r.get_json()["title"]
        == loaded.client.post("/v1/units/NOPE/tasks:poll", json={}, headers=other).get_json()["title"]
    )
    assert loaded.client.get("/v1/units/SYT/tasks", headers=other).status_code == 404
    assert (
        loaded.client.get(f"/v1/tasks/{syt_task['id']}", headers=loaded.auth("unit", "SYT")).status_code
        == 200
    )
    assert (
        loaded.client.get("/v1/units/SYT/tasks", headers=loaded.auth("unit", "SYT")).get_json()["total"] == 1
    )


def test_reject_needs_a_note_and_returns_the_directive_to_clerks(loaded):
    directive = route(loaded, "120-KH-BCD.json")
    task = poll(loaded, "SYT")["items"][0]
    unit = loaded.auth("unit", "SYT")
    loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=unit)
    r = loaded.client.post(f"/v1/tasks/{task['id']}/status", json={"status": "rejected"}, headers=unit)
    assert r.status_code == 409 and "note" in r.get_json()["errors"]
    r = loaded.client.post(
        f"/v1/tasks/{task['id']}/status",
        json={"status": "rejected", "note": "Không thuộc thẩm quyền"},
        headers=unit,
    )
    assert r.get_json()["status"] == "rejected"
    listed = loaded.client.get(
        "/v1/directives?status=needs_assignment", headers=loaded.auth("clerk")
    ).get_json()
    assert [d["id"] for d in listed["items"]] == [directive]
    # The clerk hands it back to SYT as de_biet: same task, assigned again, offered again.
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments",
        json={"assignments": [{"unit": "SYT", "role": "de_biet"}]},
        headers=loaded.auth("clerk"),
    )
    assert r.status_code == 200 and r.get_json()["status"] == "routed"
    loaded.relay()
    again = poll(loaded, "SYT")["items"]
    assert [x["id"] for x in again] == [task["id"]] and again[0]["role"] == "de_biet"
    acked = loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=unit).get_json()
    assert acked["status"] == "completed"  # de_biet completes on receipt


def test_unmatched_directive_needs_assignment_and_clerk_assigns(loaded):
    event = registered_event("1393-CVT-CL.json")
    event.payload["metadata"]["issuer"] = {"name": "Sở Tài chính"}
    dispatch.route_directive(event, engine=loaded.deps.engine, calendar=loaded.deps.calendar)
    directive = event.payload["directive_id"]
    clerk = loaded.auth("clerk")
    progress = loaded.client.get(f"/v1/directives/{directive}/progress", headers=clerk).get_json()
    assert progress["status"] == "needs_assignment" and progress["tasks"] == []
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments",
        json={
            "assignments": [
                {"unit": "SYT", "role": "chu_tri", "due_date": "2021-04-30"},
                {"unit": "BPTV", "role": "phoi_hop"},
            ]
        },
        headers=clerk,
    )
    body = r.get_json()
    assert body["status"] == "routed" and {x["unit"]: x["role"] for x in body["tasks"]} == {
        "SYT": "chu_tri",
        "BPTV": "phoi_hop",
    }
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments",
        json={"assignments": [{"unit": "BPTV", "cancel": True}]},
        headers=clerk,
    )
    assert {x["unit"]: x["status"] for x in r.get_json()["tasks"]}["BPTV"] == "cancelled"
    r = loaded.client.post(
        f"/v1/directives/{directive}/assignments", json={"assignments": [{"unit": "NOPE"}]}, headers=clerk
    )
    assert r.status_code == 422 and "assignments.0.unit" in r.get_json()["errors"]
    assert (
        loaded.client.post(
            f"/v1/directives/{directive}/assignments",
            json={"assignments": [{"unit": "SYT"}]},
            headers=loaded.auth("auditor"),
        ).status_code
        == 403
    )


def test_report_file_goes_to_the_staging_bucket_and_into_the_event(loaded):
    route(loaded, "171-CV-BTGTU.json")
    task = poll(loaded, "BPTV")["items"][0]
    unit = loaded.auth("unit", "BPTV")
    loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=unit)
    data = "Báo cáo kết quả tuyên truyền".encode() * 10
    r = loaded.client.post(
        f"/v1/tasks/{task['id']}/status",
        data={
            "status": "completed",
            "note": "Hoàn thành",
            "report": (io.BytesIO(data), "báo-cáo.pdf", "application/pdf"),
        },
        headers=unit,
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.get_json()
    digest = hashlib.sha256(data).hexdigest()
    report = r.get_json()["history"][-1]["report"]
    assert report == {
        "bucket": "docroute-staging",
        "key": f"tasks/{task['id']}/{digest}",
        "sha256": digest,
        "size": len(data),
        "filename": "báo-cáo.pdf",
        "content_type": "application/pdf",
    }
    assert loaded.deps.store.read("docroute-staging", report["key"]) == data
    event = outbox_events(loaded, "routing.task_status_changed")[-1]
    assert event["payload"]["report"] == report and event["payload"]["status"] == "completed"


def test_attachment_download_checks_sha256_and_ownership(loaded):
    data = b"%PDF-1.4 signed directive"
    store = loaded.deps.store
    store.ensure_bucket("docroute-staging")
    digest = hashlib.sha256(data).hexdigest()
    store.put(
        "docroute-staging",
        "d/1/" + digest,
        data,
        size=len(data),
        content_type="application/pdf",
        sha256=digest,
    )
    att = {
        "id": "a1",
        "filename": "Công văn 171.pdf",
        "content_type": "application/pdf",
        "size": len(data),
        "sha256": digest,
        "bucket": "docroute-staging",
        "key": "d/1/" + digest,
    }
    bad = dict(att, id="a2", sha256="0" * 64)
    route(loaded, "171-CV-BTGTU.json", attachments=[att, bad])
    task = poll(loaded, "CTTDT")["items"][0]
    assert [a["href"] for a in task["attachments"]] == [
        f"/v1/tasks/{task['id']}/attachments/a1",
        f"/v1/tasks/{task['id']}/attachments/a2",
    ]
    r = loaded.client.get(task["attachments"][0]["href"], headers=loaded.auth("unit", "CTTDT"))
    assert r.status_code == 200 and r.data == data and "UTF-8''C%C3%B4ng" in r.headers["Content-Disposition"]
    assert (
        loaded.client.get(task["attachments"][1]["href"], headers=loaded.auth("unit", "CTTDT")).status_code
        == 502
    )
    assert (
        loaded.client.get(task["attachments"][0]["href"], headers=loaded.auth("unit", "SYT")).status_code
        == 404
    )


def test_overdue_scan_marks_once_reminds_and_lists(loaded):
    route(loaded, "171-CV-BTGTU.json", arrival_date=date(2021, 4, 13))
    engine = loaded.deps.engine
    assert deadlines.scan_overdue(engine=engine, now=datetime(2021, 4, 20, tzinfo=UTC)) == 0
    later = datetime(2021, 6, 1, tzinfo=UTC)
    assert deadlines.scan_overdue(engine=engine, now=later) == 13
    assert deadlines.scan_overdue(engine=engine, now=later + timedelta(hours=1)) == 0
    overdue_events = outbox_events(loaded, "routing.task_overdue")
    reminders = outbox_events(loaded, "routing.task_reminder")
    assert len(overdue_events) == len(reminders) == 13
    # The reminder is what the unit client's README promises (task id, unit, due_at, message) and the whole
    # task besides; the overdue event carries the same.
    for envelope in overdue_events + reminders:
        assert TaskReminder().validate(envelope["payload"]) == {}
    first = next(e["payload"] for e in reminders if e["payload"]["unit"] == "CTTDT")
    assert first["task_id"] == first["id"] and first["due_at"] and first["overdue_since"] == later.isoformat()
    assert first["message"].startswith("Quá hạn xử lý từ ") and "171-CV/BTGTU" in first["message"]
    loaded.relay()
    got = poll(loaded, "CTTDT", max=10)
    assert len(got["items"]) == 1 and len(got["reminders"]) == 1 and got["reminders"][0]["overdue"] is True
    overdue = loaded.client.get("/v1/overdue", headers=loaded.auth("auditor")).get_json()
    assert overdue["total"] == 13 and {g["unit"] for g in overdue["items"]} >= {"CTTDT", "BPTV"}


def test_lease_expiry_offers_the_task_again(loaded):
    route(loaded, "171-CV-BTGTU.json")
    first = poll(loaded, "CTTDT", lease_seconds=30)["items"][0]
    engine = loaded.deps.engine
    assert deadlines.expire_leases(engine=engine) == 0  # lease still running
    assert deadlines.expire_leases(engine=engine, now=datetime.now(UTC) + timedelta(seconds=31)) == 1
    loaded.relay()
    again = poll(loaded, "CTTDT")["items"]
    assert [x["id"] for x in again] == [first["id"]]
    loaded.client.post(f"/v1/tasks/{first['id']}/ack", headers=loaded.auth("unit", "CTTDT"))
    assert deadlines.expire_leases(engine=engine, now=datetime.now(UTC) + timedelta(hours=1)) == 0


def test_poll_validates_its_body(loaded):
    r = loaded.client.post(
        "/v1/units/CTTDT/tasks:poll", json={"max": 101}, headers=loaded.auth("unit", "CTTDT")
    )
    assert r.status_code == 422 and "max" in r.get_json()["errors"]
