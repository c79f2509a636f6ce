"""intake.directive_revoked in routing: every open task cancelled with the reason, each holder told on its
queue, the directive revoked for good, nothing done twice, and no unit may move a cancelled task."""

import json

import pytest
import sqlalchemy as sa
from routing import dispatch, lifecycle
from routing.adapters import tables as t
from routing_testkit import registered_event
from shared.envelope import Envelope


@pytest.fixture
def routed(rapp):
    rapp.load_samples()
    event = registered_event("1393-CVT-CL.json")
    created = dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    assert len(created) == 24
    return rapp, event.payload["directive_id"]


def revoked(directive_id, reason="Cục Viễn thông thu hồi văn bản để sửa đổi"):
    return Envelope.new(
        "intake.directive_revoked",
        {
            "directive_id": directive_id,
            "arrival_number": 1,
            "number": "1393/CVT-CL",
            "reason": reason,
            "revoked_at": "2021-04-20T09:00:00+07:00",
            "revoked_by": "van-thu",
            "packet": None,
        },
        producer="intake",
    )


def outbox(rapp):
    with rapp.deps.engine.connect() as conn:
        rows = conn.execute(sa.select(t.outbox.c.body, t.outbox.c.routing_key).order_by(t.outbox.c.id)).all()
    return [(json.loads(bytes(row.body)), row.routing_key) for row in rows]


def test_open_tasks_are_cancelled_and_each_unit_is_told_once(routed):
    rapp, directive_id = routed
    ledger = rapp.client.get("/v1/units/BPTV/tasks", headers=rapp.auth("unit", "BPTV")).get_json()["items"]
    done = ledger[0]["id"]
    # One unit already finished its task: a revocation leaves completed work as it is.
    assert rapp.client.post(f"/v1/tasks/{done}/ack", headers=rapp.auth("unit", "BPTV")).status_code == 200
    moved = rapp.client.post(
        f"/v1/tasks/{done}/status", json={"status": "completed"}, headers=rapp.auth("unit", "BPTV")
    )
    assert moved.status_code == 200, moved.get_json()
    before = len(outbox(rapp))

    cancelled = lifecycle.revoke_directive(revoked(directive_id), engine=rapp.deps.engine)
    assert len(cancelled) == 23 and done not in cancelled

    progress = rapp.client.get(
        f"/v1/directives/{directive_id}/progress", headers=rapp.auth("clerk")
    ).get_json()
    assert progress["status"] == "revoked"
    assert progress["counts"] == {"cancelled": 23, "completed": 1}
    messages = [
        (body, key) for body, key in outbox(rapp)[before:] if body["type"] == "routing.task_cancelled"
    ]
    assert sorted(key for _, key in messages) == sorted(
        task["unit"] for task in progress["tasks"] if task["status"] == "cancelled"
    )
    body = messages[0][0]["payload"]
    assert body["status"] == "cancelled"
    assert body["reason"] == "Cục Viễn thông thu hồi văn bản để sửa đổi"
    task = rapp.client.get(f"/v1/tasks/{cancelled[0]}", headers=rapp.auth("clerk")).get_json()
    assert task["history"][-1]["to_status"] == "cancelled"
    assert task["history"][-1]["note"] == "Văn bản bị thu hồi: Cục Viễn thông thu hồi văn bản để sửa đổi"


def test_the_same_revocation_delivered_twice_does_it_once(routed):
    rapp, directive_id = routed
    event = revoked(directive_id)
    assert len(lifecycle.revoke_directive(event, engine=rapp.deps.engine)) == 24
    count = len(outbox(rapp))
    assert lifecycle.revoke_directive(event, engine=rapp.deps.engine) == []
    # Another message revoking it again (a repeated packet) finds nothing open either.
    assert lifecycle.revoke_directive(revoked(directive_id), engine=rapp.deps.engine) == []
    assert len(outbox(rapp)) == count


def test_a_unit_cannot_move_a_cancelled_task(routed):
    rapp, directive_id = routed
    lifecycle.revoke_directive(revoked(directive_id), engine=rapp.deps.engine)
    task = rapp.client.get("/v1/units/BPTV/tasks", headers=rapp.auth("unit", "BPTV")).get_json()["items"][0]
    assert task["status"] == "cancelled"
    for status in ("in_progress", "completed"):
        response = rapp.client.post(
            f"/v1/tasks/{task['id']}/status", json={"status": status}, headers=rapp.auth("unit", "BPTV")
        )
        assert response.status_code == 409
    assert (
        rapp.client.post(f"/v1/tasks/{task['id']}/ack", headers=rapp.auth("unit", "BPTV")).status_code == 409
    )


def test_the_revoked_status_survives_later_task_changes(routed):
    rapp, directive_id = routed
    lifecycle.revoke_directive(revoked(directive_id), engine=rapp.deps.engine)
    with rapp.deps.engine.begin() as conn:
        from routing.ledger import refresh_directive_status

        assert refresh_directive_status(conn, directive_id) == "revoked"


def test_a_revocation_before_the_directive_is_routed_is_tried_again(rapp):
    with pytest.raises(lifecycle.DirectiveNotYetRouted):
        lifecycle.revoke_directive(revoked("never-routed"), engine=rapp.deps.engine)
    # Nothing was claimed: the redelivery will do it once the directive is there.
    with rapp.deps.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.inbox)).scalar_one() == 0


def rejected(directive_id, reason="Không thuộc thẩm quyền giải quyết của Sở"):
    return Envelope.new(
        "intake.directive_rejected",
        {
            "directive_id": directive_id,
            "reason": reason,
            "rejected_by": "van-thu",
            "rejected_at": "2021-04-13T09:00:00+07:00",
        },
        producer="intake",
    )


def test_a_refusal_cancels_every_open_task_once_and_tells_each_unit(routed):
    rapp, directive_id = routed
    before = len(outbox(rapp))
    event = rejected(directive_id)
    cancelled = lifecycle.reject_directive(event, engine=rapp.deps.engine)
    assert len(cancelled) == 24
    assert lifecycle.reject_directive(event, engine=rapp.deps.engine) == []
    progress = rapp.client.get(
        f"/v1/directives/{directive_id}/progress", headers=rapp.auth("clerk")
    ).get_json()
    assert progress["status"] == "rejected"
    assert progress["counts"] == {"cancelled": 24}
    told = [body for body, _ in outbox(rapp)[before:] if body["type"] == "routing.task_cancelled"]
    assert len(told) == 24
    assert told[0]["payload"]["reason"] == "Không thuộc thẩm quyền giải quyết của Sở"
    task = rapp.client.get(f"/v1/tasks/{cancelled[0]}", headers=rapp.auth("clerk")).get_json()
    assert (
        task["history"][-1]["note"]
        == "Văn bản bị từ chối tiếp nhận: Không thuộc thẩm quyền giải quyết của Sở"
    )
    with rapp.deps.engine.begin() as conn:
        from routing.ledger import refresh_directive_status

        assert refresh_directive_status(conn, directive_id) == "rejected"


def test_the_worker_takes_the_refusal_from_its_own_queue(rapp):
    from routing.messages import DIRECTIVE_REJECTED_KEY, DIRECTIVE_REJECTED_QUEUE
    from routing.worker import rejection_handler
    from shared.messaging import PermanentError

    assert DIRECTIVE_REJECTED_QUEUE == "routing.intake.directive_rejected"
    assert DIRECTIVE_REJECTED_KEY == "intake.directive_rejected.v1"
    with pytest.raises(PermanentError):
        rejection_handler(rapp.deps.engine)(Envelope.new("intake.directive_rejected", {}, producer="intake"))
