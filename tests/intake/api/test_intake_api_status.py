"""Closed loop on SQLite: statuses 01/03 at registration, 04–06 from routing's events, 02 by a clerk; the
pull endpoints; webhook subscriptions; deliveries to the integrators' receiver on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from closed_loop_testing import Receiver, wait_for
from intake.adapters.webhook_http import TargetPolicy, post
from intake.domain import edxml
from intake.domain.edxml import read_status
from intake.domain.webhooks import RetryPolicy, UnsafeTarget
from intake.status import apply_task_event
from intake.webhooks import WebhookDeliverer
from intake_testing import IntakeApp, build_intake_app, intake_environ, minimal_pdf, sample
from shared.envelope import Envelope


def with_pdf(name: str, issuer_code: str | None = "000.00.00.G22") -> dict[str, Any]:
    import base64

    body = sample(name)
    # The samples name their issuer without its agency identifier; a sender on the exchange has one.
    if issuer_code:
        body["issuer"] = {**body["issuer"], "code": issuer_code}
    body["attachments"] = [
        {
            "filename": f"{name}.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(minimal_pdf(name)).decode("ascii"),
        }
    ]
    return body


def register(
    intake: IntakeApp,
    name: str = "1393-CVT-CL",
    sub: str | None = None,
    issuer_code: str | None = "000.00.00.G22",
) -> dict[str, Any]:
    response = intake.client.post(
        "/v1/directives",
        data=json.dumps(with_pdf(name, issuer_code), ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        headers=intake.auth("submitter", sub=sub),
    )
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def statuses(intake: IntakeApp, path: str = "/v1/status-updates", role: str = "clerk", **query: Any) -> Any:
    response = intake.client.get(path, query_string=query, headers=intake.auth(role))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def task_doc(
    task_id: str, directive_id: str, status: str, role: str = "chu_tri", unit: str = "SYT"
) -> dict[str, Any]:
    return {
        "id": task_id,
        "directive_id": directive_id,
        "unit": unit,
        "role": role,
        "status": status,
        "updated_at": "2026-03-02T04:00:00+00:00",
    }


def change(task_id: str, directive_id: str, status: str, at: str, role: str = "chu_tri") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "directive_id": directive_id,
        "unit": "SYT",
        "role": role,
        "from_status": "received",
        "status": status,
        "actor": "unit-syt",
        "changed_at": at,
    }


def routing_event(kind: str, payload: dict[str, Any]) -> Envelope:
    return Envelope.new(kind, payload, producer="routing")


def apply(intake: IntakeApp, envelope: Envelope, queue: str = "intake.routing.test") -> list[str]:
    return apply_task_event(
        envelope, engine=intake.deps.engine, consumer=queue, department=intake.deps.department
    )


def test_registration_writes_01_and_03_with_the_arrival_number(intake: IntakeApp) -> None:
    created = register(intake)
    page = statuses(intake)
    assert [i["status_code"] for i in page["items"]] == ["01", "03"]
    assert [i["cursor"] for i in page["items"]] == [1, 2]
    assert page["next"] == 2
    registered = page["items"][1]
    assert registered["directive_id"] == created["id"]
    assert registered["description"] == f"Đã tiếp nhận, vào sổ văn bản đến số {created['arrival_number']}"
    packet = read_status(registered["packet"].encode("utf-8"))
    assert packet.status_code == "03"
    assert packet.description == registered["description"]
    issuer = created["issuer"]["code"]
    issued = created["issued_date"].replace("-", "/")
    assert packet.response_for.document_id == f"{issuer},{issued},{created['number']}"
    assert packet.staff is not None and packet.staff.department == "Văn thư"
    assert packet.response_for.organ_id == "000.00.00.G22"
    assert packet.response_for.code == created["number"]
    # The next page is empty and keeps the cursor.
    assert statuses(intake, after=2) == {"items": [], "next": 2}
    assert statuses(intake, f"/v1/directives/{created['id']}/status-updates")["items"] == page["items"]
    # The largest cursor there can be still answers; one beyond a BIGINT is a 422 naming `after`.
    assert statuses(intake, after=2**63 - 1)["items"] == []
    beyond = intake.client.get(
        "/v1/status-updates?after=95862829010478019806935121920", headers=intake.auth("clerk")
    )
    assert beyond.status_code == 422 and "after" in beyond.get_json()["errors"]


def test_a_sender_without_an_agency_identifier_is_named_with_the_departments_identifier(
    intake: IntakeApp,
) -> None:
    """DocumentId is never composed with an empty OrganId: the department's own identifier stands in
    (DOCROUTE_INTAKE_ORGAN_ID, or the organisation code when that is unset); ResponseFor/OrganId stays
    absent, since the issuer's identifier is unknown."""
    created = register(intake, issuer_code=None)
    issued = created["issued_date"].replace("-", "/")
    for item in statuses(intake)["items"]:
        packet = read_status(item["packet"].encode("utf-8"))
        assert packet.response_for.organ_id is None
        assert packet.response_for.document_id == f"STTTT,{issued},{created['number']}"
        assert item["document_id"] == packet.response_for.document_id
    # The directive written back out as a packet carries the same DocumentId.
    written = intake.client.get(f"/v1/directives/{created['id']}/edxml", headers=intake.auth("clerk"))
    assert edxml.read_packet(written.data).document_id == f"STTTT,{issued},{created['number']}"


def test_the_configured_department_identifier_stands_in_for_an_unknown_issuer(tmp_path: Path) -> None:
    configured = build_intake_app(intake_environ(tmp_path, DOCROUTE_INTAKE_ORGAN_ID="000.00.12.H10"))
    try:
        created = register(configured, issuer_code=None)
        issued = created["issued_date"].replace("-", "/")
        (first, _) = statuses(configured)["items"]
        assert first["document_id"] == f"000.00.12.H10,{issued},{created['number']}"
    finally:
        configured.deps.engine.dispose()


def test_a_submitter_sees_only_its_own_directives_statuses(intake: IntakeApp) -> None:
    mine = register(intake, "1393-CVT-CL", sub="eoffice-a")
    register(intake, "171-CV-BTGTU", sub="eoffice-b")
    response = intake.client.get("/v1/status-updates", headers=intake.auth("submitter", sub="eoffice-a"))
    assert {i["directive_id"] for i in response.get_json()["items"]} == {mine["id"]}
    other = intake.client.get(
        f"/v1/directives/{mine['id']}/status-updates", headers=intake.auth("submitter", sub="eoffice-b")
    )
    assert other.status_code == 404
    assert intake.client.get("/v1/status-updates").status_code == 401
    assert intake.client.get("/v1/status-updates", headers=intake.auth("unit")).status_code == 403
    bad = intake.client.get("/v1/status-updates?limit=0", headers=intake.auth("clerk"))
    assert bad.status_code == 422 and "limit" in bad.get_json()["errors"]


def test_routing_progress_yields_04_05_06_once_each_in_order(intake: IntakeApp) -> None:
    directive = register(intake)["id"]
    assigned = routing_event(
        "routing.tasks_assigned",
        {
            "directive_id": directive,
            "tasks": [
                task_doc("t1", directive, "assigned"),
                task_doc("t2", directive, "assigned", role="phoi_hop"),
            ],
        },
    )
    assert apply(intake, assigned) == ["04"]
    assert apply(intake, assigned) == []  # redelivered: claimed in the inbox already
    acked = routing_event(
        "routing.tasks_acknowledged",
        {"changes": [change("t1", directive, "received", "2026-03-02T05:00:00+00:00")]},
    )
    assert apply(intake, acked) == []
    # The task jumps straight to completed: 05 comes before 06.
    done = routing_event(
        "routing.task_status_changed", change("t1", directive, "completed", "2026-03-02T06:00:00+00:00")
    )
    assert apply(intake, done) == ["05", "06"]
    page = statuses(intake, f"/v1/directives/{directive}/status-updates")
    assert [i["status_code"] for i in page["items"]] == ["01", "03", "04", "05", "06"]
    assert page["items"][2]["description"] == "Đã phân công xử lý: SYT"
    assert page["items"][2]["staff"]["department"] == "SYT"
    assert page["items"][4]["staff"]["staff"] == "unit-syt"


def test_a_late_older_event_does_not_undo_a_newer_one(intake: IntakeApp) -> None:
    directive = register(intake)["id"]
    # The status change overtakes the tasks_assigned event (different queues).
    done = routing_event(
        "routing.task_status_changed", change("t1", directive, "completed", "2026-03-02T06:00:00+00:00")
    )
    assert apply(intake, done) == ["04", "05", "06"]
    late = routing_event(
        "routing.tasks_assigned",
        {"directive_id": directive, "tasks": [task_doc("t1", directive, "assigned")]},
    )
    assert apply(intake, late) == []
    with intake.deps.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM directive_tasks")).scalar_one() == "completed"


def test_a_cancelled_chu_tri_task_does_not_hold_back_completion(intake: IntakeApp) -> None:
    directive = register(intake)["id"]
    apply(
        intake,
        routing_event(
            "routing.tasks_assigned",
            {
                "directive_id": directive,
                "tasks": [task_doc("a", directive, "assigned"), task_doc("b", directive, "assigned")],
            },
        ),
    )
    assert apply(
        intake,
        routing_event(
            "routing.task_status_changed", change("a", directive, "in_progress", "2026-03-02T06:00:00+00:00")
        ),
    ) == ["05"]
    assert (
        apply(
            intake,
            routing_event(
                "routing.task_status_changed",
                change("a", directive, "completed", "2026-03-02T07:00:00+00:00"),
            ),
        )
        == []
    )
    assert apply(
        intake,
        routing_event(
            "routing.task_status_changed", change("b", directive, "cancelled", "2026-03-02T08:00:00+00:00")
        ),
    ) == ["06"]


def test_a_clerk_refuses_a_directive_with_a_reason(intake: IntakeApp) -> None:
    directive = register(intake)["id"]
    url = f"/v1/directives/{directive}:reject"
    assert intake.client.post(url, json={"reason": "x"}, headers=intake.auth("submitter")).status_code == 403
    missing = intake.client.post(url, json={}, headers=intake.auth("clerk"))
    assert missing.status_code == 422 and "reason" in missing.get_json()["errors"]
    blank = intake.client.post(url, json={"reason": "   "}, headers=intake.auth("clerk"))
    assert blank.status_code == 422 and "reason" in blank.get_json()["errors"]
    assert intake.count_rows("status_updates") == 2

    refused = intake.client.post(
        url, json={"reason": "Không đúng thẩm quyền giải quyết"}, headers=intake.auth("clerk")
    )
    assert refused.status_code == 200, refused.get_json()
    body = refused.get_json()
    assert body["status"] == "rejected"
    assert [i["status_code"] for i in body["status_updates"]] == ["01", "03", "02"]
    assert (
        body["status_updates"][2]["description"]
        == "Từ chối tiếp nhận văn bản: Không đúng thẩm quyền giải quyết"
    )
    assert read_status(body["status_updates"][2]["packet"].encode()).status_code == "02"
    again = intake.client.post(url, json={"reason": "lần nữa"}, headers=intake.auth("clerk"))
    assert again.status_code == 200 and len(again.get_json()["status_updates"]) == 3
    read = intake.client.get(f"/v1/directives/{directive}", headers=intake.auth("clerk")).get_json()
    assert read["status"] == "rejected"
    with intake.deps.engine.connect() as conn:
        types = [
            json.loads(bytes(b))["type"]
            for b in conn.execute(sa.text("SELECT body FROM outbox ORDER BY id")).scalars()
        ]
    assert types == ["intake.directive_registered", "intake.directive_rejected"]
    # Routing's later progress no longer reaches the sender.
    assigned = routing_event(
        "routing.tasks_assigned",
        {"directive_id": directive, "tasks": [task_doc("t1", directive, "assigned")]},
    )
    assert apply(intake, assigned) == []
    unknown = intake.client.post(
        "/v1/directives/nope:reject", json={"reason": "x"}, headers=intake.auth("clerk")
    )
    assert unknown.status_code == 404


def test_a_completed_directive_cannot_be_refused(intake: IntakeApp) -> None:
    directive = register(intake)["id"]
    apply(
        intake,
        routing_event(
            "routing.task_status_changed", change("t1", directive, "completed", "2026-03-02T06:00:00+00:00")
        ),
    )
    refused = intake.client.post(
        f"/v1/directives/{directive}:reject", json={"reason": "muộn"}, headers=intake.auth("clerk")
    )
    assert refused.status_code == 409
    assert refused.headers["Content-Type"].startswith("application/problem+json")


def subscribe(intake: IntakeApp, **body: Any) -> dict[str, Any]:
    response = intake.client.post("/v1/subscriptions", json=body, headers=intake.auth("admin"))
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def test_subscriptions_are_admin_only_and_show_the_secret_once(intake: IntakeApp) -> None:
    assert (
        intake.client.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:1/"}, headers=intake.auth("clerk")
        ).status_code
        == 403
    )
    created = subscribe(intake, url="http://127.0.0.1:9/hooks", senders=["000.00.00.G22"], format="edxml")
    assert created["secret"].startswith("whsec_")
    assert created["format"] == "edxml" and created["senders"] == ["000.00.00.G22"] and created["active"]
    one = intake.client.get(f"/v1/subscriptions/{created['id']}", headers=intake.auth("admin")).get_json()
    assert "secret" not in one
    listed = intake.client.get("/v1/subscriptions", headers=intake.auth("admin")).get_json()["items"]
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    bad = intake.client.post(
        "/v1/subscriptions", json={"url": "ftp://x/", "format": "xml"}, headers=intake.auth("admin")
    )
    assert bad.status_code == 422 and "format" in bad.get_json()["errors"]
    bad_url = intake.client.post("/v1/subscriptions", json={"url": "ftp://x/"}, headers=intake.auth("admin"))
    assert bad_url.status_code == 422 and "url" in bad_url.get_json()["errors"]
    assert (
        intake.client.delete(f"/v1/subscriptions/{created['id']}", headers=intake.auth("admin")).status_code
        == 204
    )
    assert (
        intake.client.get(f"/v1/subscriptions/{created['id']}", headers=intake.auth("admin")).status_code
        == 404
    )
    assert (
        intake.client.delete(f"/v1/subscriptions/{created['id']}", headers=intake.auth("admin")).status_code
        == 404
    )


class StepClock:
    """Moves only when a test moves it; starts at the real time, since receivers check webhook-timestamp."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def deliverer(
    intake: IntakeApp, clock: StepClock, *, window: timedelta = timedelta(hours=24)
) -> WebhookDeliverer:
    return WebhookDeliverer(
        intake.deps.engine,
        sender=intake.deps.department.organ,
        policy=TargetPolicy(production=False, timeout=5.0),
        retry=RetryPolicy(timedelta(seconds=5), timedelta(minutes=10), window),
        secrets=intake.deps.secret_box,
        clock=clock,
    )


@pytest.fixture
def receiver() -> Any:
    started = Receiver().start()
    yield started
    started.stop()


def test_deliveries_reach_the_receiver_signed_in_order_and_survive_an_outage(
    intake: IntakeApp, receiver: Receiver
) -> None:
    subscription = subscribe(intake, url=receiver.url)
    receiver.use_secret(subscription["secret"])
    edxml = subscribe(intake, url=receiver.url, format="edxml", senders=["000.00.00.G22"])
    clock = StepClock()
    sender = deliverer(intake, clock)
    first = register(intake, "1393-CVT-CL")
    receiver.answer[0] = 503
    assert sender.round() == 2  # 01 to both subscriptions; their 03s wait behind them
    assert receiver.deliveries == []
    receiver.stop()  # then connections are refused
    clock.now += timedelta(seconds=6)
    assert sender.round() == 2
    with intake.deps.engine.connect() as conn:
        errors = list(
            conn.execute(sa.text("SELECT last_error FROM webhook_deliveries WHERE attempts = 2")).scalars()
        )
    assert errors and all("Connection refused" in e or "ConnectionRefused" in e for e in errors)
    receiver.answer[0] = 204
    receiver.start()
    clock.now += timedelta(seconds=11)
    while sender.round():
        pass
    got = receiver.statuses()
    assert got == [(first["id"], "01"), (first["id"], "03")]
    # The edXML subscription signs with its own secret: this receiver refused its 01, so its 03 waits.
    assert receiver.received.refused == 1
    assert receiver.received.duplicates == 0
    data = receiver.deliveries[1]["json"]["data"]
    assert data == statuses(intake)["items"][1] | {"occurred_at": data["occurred_at"]}
    assert edxml["secret"] != subscription["secret"]


def test_the_edxml_format_sends_the_packet(intake: IntakeApp, receiver: Receiver) -> None:
    subscription = subscribe(intake, url=receiver.url, format="edxml")
    receiver.use_secret(subscription["secret"])
    clock = StepClock()
    register(intake)
    sender = deliverer(intake, clock)
    while sender.round():
        pass
    assert [d["content_type"] for d in receiver.deliveries] == ["application/xml; charset=utf-8"] * 2
    assert [read_status(d["xml"].encode()).status_code for d in receiver.deliveries] == ["01", "03"]


def test_filters_select_senders_and_directives(intake: IntakeApp, receiver: Receiver) -> None:
    subscription = subscribe(intake, url=receiver.url, senders=["000.00.00.G99"])
    receiver.use_secret(subscription["secret"])
    register(intake)
    clock = StepClock()
    assert deliverer(intake, clock).round() == 0
    assert receiver.deliveries == []


def test_410_disables_and_a_dead_letter_is_replayed(intake: IntakeApp, receiver: Receiver) -> None:
    subscription = subscribe(intake, url=receiver.url)
    receiver.use_secret(subscription["secret"])
    clock = StepClock()
    sender = deliverer(intake, clock, window=timedelta(seconds=30))
    register(intake)
    receiver.answer[0] = 500
    sender.round()
    for _ in range(10):
        clock.now += timedelta(seconds=20)
        sender.round()
    dead = intake.client.get(
        f"/v1/subscriptions/{subscription['id']}/dead-letters", headers=intake.auth("admin")
    )
    assert [d["attempts"] >= 2 for d in dead.get_json()["items"]] == [True, True]
    receiver.answer[0] = 204
    replay = intake.client.post(
        f"/v1/subscriptions/{subscription['id']}/dead-letters:replay", json={}, headers=intake.auth("admin")
    )
    assert replay.get_json() == {"replayed": 2}
    while sender.round():
        pass
    assert [code for _, code in receiver.statuses()] == ["01", "03"]

    receiver.answer[0] = 410
    register(intake, "171-CV-BTGTU")
    sender.round()
    read = intake.client.get(
        f"/v1/subscriptions/{subscription['id']}", headers=intake.auth("admin")
    ).get_json()
    assert read["active"] is False and "410" in read["disabled_reason"]
    with intake.deps.engine.connect() as conn:
        states = sorted(conn.execute(sa.text("SELECT state FROM webhook_deliveries")).scalars())
    assert states == ["cancelled", "dead", "delivered", "delivered"]


def test_the_client_refuses_inside_addresses_after_resolving(receiver: Receiver) -> None:
    production = TargetPolicy(production=True, timeout=2.0)
    with pytest.raises(UnsafeTarget):
        post("https://hooks.example.vn/x", b"{}", {}, policy=production, resolver=lambda h, p: ["10.0.0.7"])
    with pytest.raises(UnsafeTarget):
        post("https://hooks.example.vn/x", b"{}", {}, policy=production, resolver=lambda h, p: ["127.0.0.1"])
    # Development calls a loopback receiver, connecting to the checked address even if the name differs.
    development = TargetPolicy(production=False, timeout=2.0, max_response_bytes=16)
    receiver.answer[0] = 503
    from intake.adapters.webhook_http import DeliveryFailed

    with pytest.raises(DeliveryFailed) as failed:
        post(
            f"http://receiver.test:{receiver.port}/x",
            b"{}",
            {},
            policy=development,
            resolver=lambda h, p: ["127.0.0.1"],
        )
    assert failed.value.status == 503


def test_the_worker_runs_deliveries_in_its_own_thread(intake: IntakeApp, receiver: Receiver) -> None:
    import threading

    from intake.worker import IntakeWorker

    subscription = subscribe(intake, url=receiver.url)
    receiver.use_secret(subscription["secret"])
    created = register(intake)
    worker = IntakeWorker(intake.deps.settings, engine=intake.deps.engine, idle_sleep=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: len(receiver.deliveries) == 2, timeout=30)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert receiver.statuses() == [(created["id"], "01"), (created["id"], "03")]


def test_the_secret_never_reaches_the_logs(
    intake: IntakeApp, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    subscription = subscribe(intake, url=receiver.url)
    secret = subscription["secret"]
    register(intake)
    receiver.answer[0] = 500
    clock = StepClock()
    deliverer(intake, clock).round()
    assert any("webhook attempt failed" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "".join(str(vars(r)) for r in caplog.records)
    assert secret not in logged and secret[6:] not in logged


def test_an_unreadable_routing_event_is_refused_for_good_and_changes_nothing(intake: IntakeApp) -> None:
    from intake.worker import subscriptions
    from shared.messaging import PermanentError

    directive = register(intake)["id"]
    broken = routing_event("routing.tasks_assigned", {"directive_id": directive})
    [handler] = [
        s.handler
        for s in subscriptions(intake.deps.engine, intake.deps.department)
        if s.queue.endswith(".tasks_assigned")
    ]
    with pytest.raises(PermanentError):
        handler(broken)
    assert intake.count_rows("status_updates") == 2
    assert intake.count_rows("directive_tasks") == 0


def test_a_progress_status_carries_the_time_routing_made_the_change(intake: IntakeApp) -> None:
    directive = register(intake)["id"]
    apply(
        intake,
        routing_event(
            "routing.task_status_changed", change("t1", directive, "in_progress", "2026-03-02T06:30:00+00:00")
        ),
    )
    items = statuses(intake, f"/v1/directives/{directive}/status-updates")["items"]
    assert [i["status_code"] for i in items] == ["01", "03", "04", "05"]
    assert items[3]["occurred_at"].startswith("2026-03-02T06:30:00")


def test_a_revoked_directive_cannot_be_refused_nor_a_refused_one_revoked(intake: IntakeApp) -> None:
    revoked = register(intake, "1393-CVT-CL")["id"]
    done = intake.client.post(
        f"/v1/directives/{revoked}:revoke", json={"reason": "Thu hồi"}, headers=intake.auth("clerk")
    )
    assert done.status_code == 200, done.get_json()
    refused = intake.client.post(
        f"/v1/directives/{revoked}:reject", json={"reason": "x"}, headers=intake.auth("clerk")
    )
    assert refused.status_code == 409
    other = register(intake, "171-CV-BTGTU")["id"]
    assert (
        intake.client.post(
            f"/v1/directives/{other}:reject", json={"reason": "Sai"}, headers=intake.auth("clerk")
        ).status_code
        == 200
    )
    again = intake.client.post(
        f"/v1/directives/{other}:revoke", json={"reason": "Thu hồi"}, headers=intake.auth("clerk")
    )
    assert again.status_code == 409
