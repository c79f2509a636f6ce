"""The worker's operator gauges on SQLite and kombu memory: overdue tasks and queue depth per unit."""

from datetime import date

import pytest
import sqlalchemy as sa
from kombu import Connection
from prometheus_client import REGISTRY
from routing import dispatch
from routing.adapters import tables as t
from routing.settings import Settings
from routing.worker import build_worker
from routing_testkit import SECRET, registered_event


@pytest.fixture
def loaded(rapp):
    rapp.load_samples()
    # memory:// is one broker per process: start from empty unit queues whatever other tests left.
    with rapp.deps.engine.connect() as conn:
        codes = list(conn.execute(sa.select(t.units.c.code)).scalars())
    with Connection("memory://") as broker:
        channel = broker.channel()
        for code in codes:
            channel.queue_purge(f"routing.tasks.{code}")
    return rapp


@pytest.fixture
def worker(loaded, tmp_path):
    settings = Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_SECRET": SECRET,
            "DOCROUTE_ROUTING_DATABASE_URL": loaded.settings.database_url,
        }
    )
    made = build_worker(settings)
    yield made
    made.queues.close()
    made.engine.dispose()


def gauge(name, unit):
    return REGISTRY.get_sample_value(name, {"unit": unit})


def route(rapp, name, arrival):
    event = registered_event(name, arrival_date=arrival)
    ids = dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    rapp.relay()
    return ids


def test_overdue_gauge_counts_open_late_tasks_per_unit_and_falls_back_to_zero(loaded, worker):
    route(loaded, "171-CV-BTGTU.json", date(2021, 4, 13))  # 13 tasks, every deadline long past
    route(loaded, "1393-CVT-CL.json", date(2099, 1, 5))  # not due for decades: never counted
    worker.overdue_round()
    assert gauge("docroute_tasks_overdue", "CTTDT") == 1
    with loaded.deps.engine.connect() as conn:
        late = conn.execute(
            sa.select(sa.func.count()).select_from(t.tasks).where(t.tasks.c.overdue_at.is_not(None))
        ).scalar_one()
    assert late == 13  # the same round also marked them overdue

    # CTTDT finishes its task: the next round reports 0 for it rather than a stale 1.
    task = loaded.client.post(
        "/v1/units/CTTDT/tasks:poll", json={"max": 5}, headers=loaded.auth("unit", "CTTDT")
    ).get_json()["items"][0]
    unit = loaded.auth("unit", "CTTDT")
    assert loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=unit).status_code == 200
    for status in ("in_progress", "completed"):
        r = loaded.client.post(f"/v1/tasks/{task['id']}/status", json={"status": status}, headers=unit)
        assert r.status_code == 200, r.get_json()
    worker.overdue_round()
    assert gauge("docroute_tasks_overdue", "CTTDT") == 0


def test_queue_depth_gauge_reads_waiting_messages_per_unit_queue(loaded, worker):
    route(loaded, "171-CV-BTGTU.json", date(2099, 1, 5))
    worker.depth_round()
    assert gauge("docroute_task_queue_depth", "CTTDT") == 1
    with loaded.deps.engine.connect() as conn:
        codes = set(conn.execute(sa.select(t.tasks.c.unit)).scalars())
    assert all(gauge("docroute_task_queue_depth", code) == 1 for code in codes)

    loaded.client.post("/v1/units/CTTDT/tasks:poll", json={"max": 5}, headers=loaded.auth("unit", "CTTDT"))
    worker.depth_round()
    assert gauge("docroute_task_queue_depth", "CTTDT") == 0


def test_depths_leave_out_a_unit_whose_queue_does_not_exist(loaded, worker):
    assert worker.queues.depths(["CTTDT", "NO.SUCH.QUEUE"]) == {"CTTDT": 0}


def test_metrics_port_serves_both_gauges(loaded, worker):
    from prometheus_client import generate_latest

    route(loaded, "171-CV-BTGTU.json", date(2021, 4, 13))
    worker.overdue_round()
    worker.depth_round()
    text = generate_latest(REGISTRY).decode()
    assert 'docroute_tasks_overdue{unit="CTTDT"} 1.0' in text
    assert 'docroute_task_queue_depth{unit="CTTDT"}' in text
