"""Updates and replacements through `python -m routing.worker` on PostgreSQL and RabbitMQ: redelivered and
re-sent events change nothing twice, and a SIGKILL in the middle loses nothing."""

import json
import signal
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection
from routing import dispatch
from routing.adapters import tables as t
from routing.messages import (
    DIRECTIVE_REGISTERED_EXCHANGE,
    DIRECTIVE_REPLACED_KEY,
    DIRECTIVE_REPLACED_QUEUE,
    DIRECTIVE_UPDATED_KEY,
    DIRECTIVE_UPDATED_QUEUE,
)
from routing_testkit import registered_event, sample_metadata
from shared.envelope import Envelope
from shared.messaging import Publisher, declare_consumer_queue

pytestmark = pytest.mark.integration

N = 8


def update(directive_id: str, due: str) -> Envelope:
    return Envelope.new(
        "intake.directive_updated",
        {
            "directive_id": directive_id,
            "arrival_number": 1,
            "number": "1393/CVT-CL",
            "revision": 2,
            "changes": {"due_date": {"from": None, "to": due}},
            "metadata": {**sample_metadata("1393-CVT-CL.json"), "due_date": due},
            "attachments_added": [],
            "reason": None,
            "updated_at": "2021-04-20T09:00:00+07:00",
            "updated_by": "van-thu",
            "packet": None,
        },
        producer="intake",
    )


def replacement(directive_id: str, new_id: str) -> Envelope:
    return Envelope.new(
        "intake.directive_replaced",
        {
            "directive_id": directive_id,
            "arrival_number": 1,
            "number": "1393/CVT-CL",
            "replacement": {"directive_id": new_id, "arrival_number": 99, "number": "1450/CVT-CL"},
            "reason": "Ban hành lại",
            "replaced_at": "2021-04-21T09:00:00+07:00",
            "replaced_by": "van-thu",
        },
        producer="intake",
    )


def outbox_types(engine) -> dict[str, int]:
    with engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body)).scalars().all()
    found: dict[str, int] = {}
    for body in bodies:
        kind = json.loads(bytes(body))["type"]
        found[kind] = found.get(kind, 0) + 1
    return found


def test_updates_and_replacements_survive_redelivery_and_a_kill(worker_bench) -> None:
    app, amqp_url = worker_bench.app, worker_bench.amqp_url
    engine, calendar = app.deps.engine, app.deps.calendar
    directives = []
    for i in range(N):
        event = registered_event("1393-CVT-CL.json", arrival_number=i + 1)
        assert len(dispatch.route_directive(event, engine=engine, calendar=calendar)) == 24
        directives.append(event.payload["directive_id"])
    updates = [update(d, "2021-04-30") for d in directives[: N // 2]]
    replaced = {d: str(uuid.uuid4()) for d in directives[N // 2 :]}
    replacements = [replacement(d, new) for d, new in replaced.items()]
    with Connection(amqp_url) as conn:
        declare_consumer_queue(
            conn, DIRECTIVE_UPDATED_QUEUE, DIRECTIVE_REGISTERED_EXCHANGE, DIRECTIVE_UPDATED_KEY
        )
        declare_consumer_queue(
            conn, DIRECTIVE_REPLACED_QUEUE, DIRECTIVE_REGISTERED_EXCHANGE, DIRECTIVE_REPLACED_KEY
        )
    with Publisher(amqp_url) as publisher:
        for event, key in [(e, DIRECTIVE_UPDATED_KEY) for e in updates] + [
            (e, DIRECTIVE_REPLACED_KEY) for e in replacements
        ]:
            publisher.publish(
                exchange=DIRECTIVE_REGISTERED_EXCHANGE,
                routing_key=key,
                body=event.to_bytes(),
                message_id=event.id,
            )
        # A redelivered update (same id) and a re-sent one (a new id, the same revision): nothing twice.
        again = update(directives[0], "2021-04-30")
        for event in (updates[0], again):
            publisher.publish(
                exchange=DIRECTIVE_REGISTERED_EXCHANGE,
                routing_key=DIRECTIVE_UPDATED_KEY,
                body=event.to_bytes(),
                message_id=event.id,
            )
        publisher.publish(
            exchange=DIRECTIVE_REGISTERED_EXCHANGE,
            routing_key=DIRECTIVE_REPLACED_KEY,
            body=replacements[0].to_bytes(),
            message_id=replacements[0].id,
        )

    def applied() -> tuple[int, int]:
        with engine.connect() as conn:
            moved = conn.execute(
                sa.select(sa.func.count()).select_from(t.directives).where(t.directives.c.revision == 2)
            ).scalar_one()
            ended = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.directives)
                .where(t.directives.c.status == "replaced")
            ).scalar_one()
        return int(moved), int(ended)

    worker = worker_bench.start_worker(DOCROUTE_LEASE_SCAN_SECONDS="0.2")
    worker_bench.wait_for(lambda: applied() != (0, 0), 60, "the first update or replacement", worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    worker = worker_bench.start_worker(DOCROUTE_LEASE_SCAN_SECONDS="0.2")
    worker_bench.wait_for(lambda: applied() == (N // 2, N // 2), 60, "every update and replacement", worker)
    worker_bench.stop(worker, grace=15)

    kinds = outbox_types(engine)
    # 24 open tasks each: an updated directive's units told once, a replaced one's tasks cancelled once.
    assert kinds.get("routing.task_updated") == 24 * (N // 2)
    assert kinds.get("routing.task_cancelled") == 24 * (N // 2)
    for directive_id in directives[: N // 2]:
        progress = app.client.get(
            f"/v1/directives/{directive_id}/progress", headers=app.auth("clerk")
        ).get_json()
        assert {task["due_date"] for task in progress["tasks"]} == {"2021-04-30"} and progress[
            "revision"
        ] == 2
    for directive_id, new_id in replaced.items():
        progress = app.client.get(
            f"/v1/directives/{directive_id}/progress", headers=app.auth("clerk")
        ).get_json()
        assert progress["status"] == "replaced" and progress["replaced_by"] == new_id
        assert progress["counts"] == {"cancelled": 24}
