"""intake.directive_updated and intake.directive_replaced in routing: due dates that came from the directive
move, the rules are evaluated again (tasks added or cancelled), each unit is told on its queue, nothing is
done twice; a replaced directive's open tasks are cancelled pointing to the new one, and both link."""

import json
from datetime import date

import pytest
import sqlalchemy as sa
from routing import dispatch, lifecycle
from routing.adapters import tables as t
from routing.messages import TaskCancelled, TaskUpdated
from routing_testkit import registered_event, sample_metadata
from shared.envelope import Envelope


def outbox(rapp):
    with rapp.deps.engine.connect() as conn:
        rows = conn.execute(sa.select(t.outbox.c.body, t.outbox.c.routing_key).order_by(t.outbox.c.id)).all()
    return [(json.loads(bytes(row.body)), row.routing_key) for row in rows]


def progress(rapp, directive_id):
    response = rapp.client.get(f"/v1/directives/{directive_id}/progress", headers=rapp.auth("clerk"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def routed(rapp):
    rapp.load_samples()
    event = registered_event("1393-CVT-CL.json")
    created = dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    assert len(created) == 24
    return rapp, event.payload["directive_id"]


def updated(directive_id, revision=2, *, changes=None, reason="Gia hạn", **metadata):
    meta = {**sample_metadata("1393-CVT-CL.json"), **metadata}
    return Envelope.new(
        "intake.directive_updated",
        {
            "directive_id": directive_id,
            "arrival_number": 1,
            "number": "1393/CVT-CL",
            "revision": revision,
            "changes": changes or {},
            "metadata": meta,
            "attachments_added": [],
            "reason": reason,
            "updated_at": "2021-04-20T09:00:00+07:00",
            "updated_by": "van-thu",
            "packet": None,
        },
        producer="intake",
    )


def test_an_earlier_due_date_moves_every_open_task_and_each_unit_is_told(routed):
    rapp, directive_id = routed
    before = progress(rapp, directive_id)
    rule_due = {task["due_date"] for task in before["tasks"]}
    assert rule_due == {"2021-05-14"}  # the rule's 20 working days from 13 April (holidays skipped)
    count = len(outbox(rapp))
    change = {"due_date": {"from": None, "to": "2021-04-30"}}
    done = lifecycle.update_directive(
        updated(directive_id, changes=change, due_date="2021-04-30"),
        engine=rapp.deps.engine,
        calendar=rapp.deps.calendar,
    )
    assert len(done.moved) == 24 and len(done.told) == 24 and not done.added and not done.cancelled
    after = progress(rapp, directive_id)
    assert {task["due_date"] for task in after["tasks"]} == {"2021-04-30"}
    assert after["revision"] == 2 and after["status"] == "routed"
    told = [(body, key) for body, key in outbox(rapp)[count:] if body["type"] == "routing.task_updated"]
    assert sorted(key for _, key in told) == sorted(task["unit"] for task in after["tasks"])
    payload = told[0][0]["payload"]
    TaskUpdated().load(payload)  # the strict wire schema of the unit's message
    assert payload["due_date"] == "2021-04-30" and payload["due_date_from"] == "2021-05-14"
    assert payload["revision"] == 2 and payload["changes"] == change and payload["reason"] == "Gia hạn"
    task = rapp.client.get(f"/v1/tasks/{done.moved[0]}", headers=rapp.auth("clerk")).get_json()
    assert task["history"][-1]["note"] == (
        "Hạn xử lý chuyển từ 2021-05-14 sang 2021-04-30 theo văn bản cập nhật (lần 2): Gia hạn"
    )


def test_a_due_date_a_clerk_set_and_finished_work_stay_as_they_are(routed):
    rapp, directive_id = routed
    tasks = progress(rapp, directive_id)["tasks"]
    finished, kept = tasks[0], tasks[1]
    unit = finished["unit"]
    assert (
        rapp.client.post(f"/v1/tasks/{finished['task_id']}/ack", headers=rapp.auth("unit", unit)).status_code
        == 200
    )
    moved = rapp.client.post(
        f"/v1/tasks/{finished['task_id']}/status",
        json={"status": "completed"},
        headers=rapp.auth("unit", unit),
    )
    assert moved.status_code == 200
    assigned = rapp.client.post(
        f"/v1/directives/{directive_id}/assignments",
        json={"assignments": [{"unit": kept["unit"], "due_date": "2021-06-01"}]},
        headers=rapp.auth("clerk"),
    )
    assert assigned.status_code == 200, assigned.get_json()
    done = lifecycle.update_directive(
        updated(directive_id, due_date="2021-04-30"), engine=rapp.deps.engine, calendar=rapp.deps.calendar
    )
    assert finished["task_id"] not in done.told and kept["task_id"] not in done.moved
    assert kept["task_id"] in done.told and len(done.moved) == 22
    after = {task["task_id"]: task for task in progress(rapp, directive_id)["tasks"]}
    assert after[kept["task_id"]]["due_date"] == "2021-06-01"
    assert after[finished["task_id"]]["due_date"] == "2021-05-14"


def test_the_same_revision_twice_or_an_older_one_late_changes_nothing(routed):
    rapp, directive_id = routed
    engine, calendar = rapp.deps.engine, rapp.deps.calendar
    event = updated(directive_id, 3, due_date="2021-04-30")
    assert len(lifecycle.update_directive(event, engine=engine, calendar=calendar).moved) == 24
    count = len(outbox(rapp))
    # The same message again (a redelivery after a crash) and revision 2 arriving after 3: nothing.
    assert lifecycle.update_directive(event, engine=engine, calendar=calendar).told == []
    late = updated(directive_id, 2, due_date="2021-04-28")
    assert lifecycle.update_directive(late, engine=engine, calendar=calendar).told == []
    assert len(outbox(rapp)) == count
    assert {task["due_date"] for task in progress(rapp, directive_id)["tasks"]} == {"2021-04-30"}


def test_the_rules_are_evaluated_again_cancelling_and_adding_tasks(rapp):
    rapp.load_samples()
    engine, calendar = rapp.deps.engine, rapp.deps.calendar
    event = registered_event("1393-CVT-CL.json")
    event.payload["metadata"]["subject"] = "V/v đo kiểm chất lượng Internet Việt Nam"
    directive_id = event.payload["directive_id"]
    assert dispatch.route_directive(event, engine=engine, calendar=calendar) == []
    assert progress(rapp, directive_id)["status"] == "needs_assignment"
    # The update names the application: the rule now matches and every unit it gives gets a task.
    count = len(outbox(rapp))
    done = lifecycle.update_directive(
        updated(directive_id, subject="V/v thúc đẩy ứng dụng i-Speed"), engine=engine, calendar=calendar
    )
    assert len(done.added) == 24 and not done.told
    now = progress(rapp, directive_id)
    assert now["status"] == "routed" and now["counts"] == {"assigned": 24}
    assert now["subject"] == "V/v thúc đẩy ứng dụng i-Speed" and now["matched_rules"] == ["ispeed"]
    offered = [body for body, _ in outbox(rapp)[count:] if body["type"] == "routing.task_offered"]
    assert len(offered) == 24
    # And a later revision that no longer names it: the rule's open tasks are cancelled, each unit told.
    count = len(outbox(rapp))
    done = lifecycle.update_directive(
        updated(directive_id, 3, subject="V/v đo kiểm chất lượng Internet"), engine=engine, calendar=calendar
    )
    assert len(done.cancelled) == 24
    cancelled = [body for body, _ in outbox(rapp)[count:] if body["type"] == "routing.task_cancelled"]
    assert len(cancelled) == 24
    TaskCancelled().load(cancelled[0]["payload"])
    assert progress(rapp, directive_id)["status"] == "needs_assignment"


def test_an_update_before_the_directive_is_routed_is_tried_again(rapp):
    with pytest.raises(lifecycle.DirectiveNotYetRouted):
        lifecycle.update_directive(
            updated("never-routed"), engine=rapp.deps.engine, calendar=rapp.deps.calendar
        )


def replaced(directive_id, new_id, reason="Ban hành lại văn bản"):
    return Envelope.new(
        "intake.directive_replaced",
        {
            "directive_id": directive_id,
            "arrival_number": 1,
            "number": "1393/CVT-CL",
            "replacement": {"directive_id": new_id, "arrival_number": 2, "number": "1450/CVT-CL"},
            "reason": reason,
            "replaced_at": "2021-04-21T09:00:00+07:00",
            "replaced_by": "edxml:000.00.00.G23",
        },
        producer="intake",
    )


def test_a_replacement_cancels_the_old_tasks_pointing_to_the_new_directive_once(routed):
    rapp, directive_id = routed
    engine = rapp.deps.engine
    new = registered_event("1393-CVT-CL.json", arrival_number=2, arrival_date=date(2021, 4, 21))
    new_id = new.payload["directive_id"]
    assert len(dispatch.route_directive(new, engine=engine, calendar=rapp.deps.calendar)) == 24
    count = len(outbox(rapp))
    event = replaced(directive_id, new_id)
    cancelled = lifecycle.replace_directive(event, engine=engine)
    assert len(cancelled) == 24
    assert lifecycle.replace_directive(event, engine=engine) == []
    old = progress(rapp, directive_id)
    assert old["status"] == "replaced" and old["replaced_by"] == new_id and old["counts"] == {"cancelled": 24}
    assert progress(rapp, new_id)["replaces"] == [directive_id]
    told = [body["payload"] for body, _ in outbox(rapp)[count:] if body["type"] == "routing.task_cancelled"]
    assert len(told) == 24
    TaskCancelled().load(told[0])
    assert told[0]["replaced_by"] == new_id and told[0]["replaced_by_number"] == "1450/CVT-CL"
    task = rapp.client.get(f"/v1/tasks/{cancelled[0]}", headers=rapp.auth("clerk")).get_json()
    assert task["history"][-1]["note"] == (
        f"Văn bản bị thay thế bởi văn bản số 1450/CVT-CL ({new_id}): Ban hành lại văn bản"
    )
    # An update of a replaced directive (it cannot come from intake, but a stray one) changes nothing.
    assert (
        lifecycle.update_directive(updated(directive_id), engine=engine, calendar=rapp.deps.calendar).told
        == []
    )


def test_the_worker_takes_updates_and_replacements_from_their_own_queues(rapp):
    from routing.messages import (
        DIRECTIVE_REPLACED_KEY,
        DIRECTIVE_REPLACED_QUEUE,
        DIRECTIVE_UPDATED_KEY,
        DIRECTIVE_UPDATED_QUEUE,
    )
    from routing.worker import replacement_handler, update_handler
    from shared.messaging import PermanentError

    assert DIRECTIVE_UPDATED_QUEUE == "routing.intake.directive_updated"
    assert DIRECTIVE_UPDATED_KEY == "intake.directive_updated.v1"
    assert DIRECTIVE_REPLACED_QUEUE == "routing.intake.directive_replaced"
    assert DIRECTIVE_REPLACED_KEY == "intake.directive_replaced.v1"
    engine = rapp.deps.engine
    with pytest.raises(PermanentError):
        update_handler(engine, rapp.deps.calendar)(
            Envelope.new("intake.directive_updated", {}, producer="intake")
        )
    with pytest.raises(PermanentError):
        replacement_handler(engine)(Envelope.new("intake.directive_replaced", {}, producer="intake"))
