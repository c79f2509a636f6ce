"""E2E: the senders are told what became of the seed's three directives — signed webhooks to a real
receiver on 127.0.0.1 (through a 503 outage, refused connections and a kill -9 of the delivering worker)
and the same sequence on the pull endpoint, every packet a QCVN 102 status packet."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from intake.domain.edxml import read_status
from shared.db import make_engine

from tests.support.unit_tasks import take_tasks, tasks_by_unit

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
NAMES = ("1393-CVT-CL", "120-KH-BCD", "171-CV-BTGTU")


def _helpers() -> Any:
    path = ROOT / "tests" / "intake" / "closed_loop_testing.py"
    spec = importlib.util.spec_from_file_location("closed_loop_testing_e2e", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


helpers = _helpers()


def wait_for(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@pytest.fixture(scope="module")
def stack(e2e_stack: Callable[..., Any]) -> Iterator[Any]:
    """intake and routing with their workers, on their own vhost and databases, delivering fast."""
    env = {
        "DOCROUTE_ORGANISATION": "STTTT",
        "DOCROUTE_INTAKE_ORGAN_ID": "000.00.12.H10",
        "DOCROUTE_INTAKE_ORGAN_NAME": "Sở Thông tin và Truyền thông tỉnh Bình Phước",
        "DOCROUTE_STATUS_CONTACT_EMAIL": "vanthu@stttt.binhphuoc.gov.vn",
        "DOCROUTE_WEBHOOK_RETRY_FIRST_SECONDS": "0.2",
        "DOCROUTE_WEBHOOK_RETRY_MAX_SECONDS": "1",
        "DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS": "900",
        "DOCROUTE_WEBHOOK_POLL_SECONDS": "0.1",
        "DOCROUTE_WEBHOOK_TIMEOUT": "1",
    }
    with e2e_stack(env, databases=("intake", "routing")) as running:
        yield running.start("intake", "routing", workers=("routing", "intake"))


@pytest.fixture(scope="module")
def intake_engine(stack: Any) -> Iterator[Any]:
    engine = make_engine(stack.database_url("intake"))
    yield engine
    engine.dispose()


def deliveries_failing(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' AND attempts >= 2")
            ).scalar_one()
        )


def take_and_ack(routing: str, e2e_env: Any, task_units: dict[str, str]) -> None:
    """Each unit takes its tasks from its queue and acknowledges them in one batch."""
    for unit, wanted in tasks_by_unit(task_units):
        headers = e2e_env.auth("unit", unit)
        take_tasks(routing, unit, wanted, headers, wait_seconds=1)
        r = requests.post(
            f"{routing}/v1/units/{unit}/tasks:ack", json={"ids": sorted(wanted)}, headers=headers, timeout=10
        )
        assert r.status_code == 200, r.text


def move(routing: str, e2e_env: Any, task_id: str, unit: str, target: str) -> None:
    r = requests.post(
        f"{routing}/v1/tasks/{task_id}/status",
        json={"status": target, "note": "Đang triển khai" if target == "in_progress" else "Đã hoàn thành"},
        headers=e2e_env.auth("unit", unit),
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["status"] == target, r.text


# Three directives' 62 tasks moved over HTTP, an outage and a restart: longer than the default 120 s.
@pytest.mark.timeout(480)
def test_senders_get_every_status_once_in_order_through_outages_and_a_kill_9(
    stack: Any, intake_engine: Any, e2e_env: Any, make_pdf: Callable[[str], bytes]
) -> None:
    routing, intake, engine = stack.url("routing"), stack.url("intake"), intake_engine
    clerk = e2e_env.auth("clerk")
    for path, name in (("/v1/units:import", "units.yaml"), ("/v1/rules", "rules.yaml")):
        method = requests.post if path.endswith("import") else requests.put
        r = method(
            f"{routing}{path}",
            data=(SAMPLES / name).read_bytes(),
            headers=clerk | {"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text

    receiver = helpers.Receiver().start()
    try:
        r = requests.post(
            f"{intake}/v1/subscriptions",
            json={"url": receiver.url},
            headers=e2e_env.auth("admin"),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        subscription = r.json()
        receiver.use_secret(subscription["secret"])
        listed = requests.get(f"{intake}/v1/subscriptions", headers=e2e_env.auth("admin"), timeout=10).json()
        assert "secret" not in listed["items"][0]

        directives: dict[str, str] = {}
        for name in NAMES:
            metadata = json.loads((SAMPLES / "directives" / f"{name}.json").read_text(encoding="utf-8"))
            r = requests.post(
                f"{intake}/v1/directives",
                headers=e2e_env.auth("submitter"),
                data={"metadata": json.dumps(metadata, ensure_ascii=False)},
                files=[
                    ("files", (f"Văn bản {name}.pdf", make_pdf(f"closed loop {name}"), "application/pdf"))
                ],
                timeout=30,
            )
            assert r.status_code == 201, r.text
            directives[name] = r.json()["id"]
        ids = set(directives.values())

        def codes_of(directive_id: str) -> list[str]:
            return [code for d, code in receiver.statuses() if d == directive_id]

        assert wait_for(lambda: all(codes_of(d) == ["01", "03", "04"] for d in ids), timeout=90), (
            receiver.statuses()
        )

        task_units: dict[str, str] = {}
        first_chu_tri: dict[str, str] = {}
        for directive_id in ids:
            progress = requests.get(
                f"{routing}/v1/directives/{directive_id}/progress", headers=clerk, timeout=10
            ).json()
            task_units.update({t["task_id"]: t["unit"] for t in progress["tasks"]})
            first_chu_tri[directive_id] = next(
                t["task_id"] for t in progress["tasks"] if t["role"] == "chu_tri"
            )

        # The receiver fails (503): the units start working; 05 is attempted again and again.
        receiver.answer[0] = 503
        take_and_ack(routing, e2e_env, task_units)
        for task_id in first_chu_tri.values():
            move(routing, e2e_env, task_id, task_units[task_id], "in_progress")
        assert wait_for(lambda: deliveries_failing(engine) >= 1, timeout=60)
        # The delivering worker dies mid-retry; the receiver now refuses connections altogether.
        stack.kill_worker("intake")
        receiver.stop()
        stack.worker("intake")  # started again, as the supervisor or the kubelet would
        for task_id, unit in sorted(task_units.items()):
            move(routing, e2e_env, task_id, unit, "completed")
        with engine.connect() as conn:
            assert wait_for(
                lambda: (
                    conn.execute(
                        sa.text("SELECT count(*) FROM webhook_deliveries WHERE last_error LIKE '%%refused%%'")
                    ).scalar_one()
                    > 0
                ),
                timeout=60,
            )
        # The receiver is back: everything arrives, each once, in order per directive.
        receiver.answer[0] = 204
        receiver.start()
        everything = ["01", "03", "04", "05", "06"]
        assert wait_for(lambda: all(codes_of(d) == everything for d in ids), timeout=120), receiver.statuses()
        assert receiver.received.duplicates == 0
        assert receiver.received.refused == 0
        assert len(receiver.deliveries) == 15
        assert len({d["webhook_id"] for d in receiver.deliveries}) == 15

        # The pull endpoint shows the same statuses in the same order per directive.
        r = requests.get(f"{intake}/v1/status-updates", params={"limit": 100}, headers=clerk, timeout=10)
        assert r.status_code == 200, r.text
        pulled = [item for item in r.json()["items"] if item["directive_id"] in ids]
        pushed = {d["json"]["data"]["id"]: d["json"]["data"] for d in receiver.deliveries}
        assert [p["id"] for p in pulled] == sorted(pushed, key=lambda i: pushed[i]["cursor"])
        for directive_id in ids:
            assert [p["status_code"] for p in pulled if p["directive_id"] == directive_id] == everything
            one = requests.get(
                f"{intake}/v1/directives/{directive_id}/status-updates", headers=clerk, timeout=10
            )
            assert [p["id"] for p in one.json()["items"]] == [
                p["id"] for p in pulled if p["directive_id"] == directive_id
            ]
        for item in pulled:
            packet = read_status(item["packet"].encode("utf-8"))
            assert packet.status_code == item["status_code"]
            assert packet.description == item["description"] == pushed[item["id"]]["description"]
            assert packet.sender.organ_id == "000.00.12.H10"
            assert packet.staff is not None and packet.staff.email == "vanthu@stttt.binhphuoc.gov.vn"
        completed = [p for p in pulled if p["status_code"] == "06"]
        assert all(p["description"].startswith("Đã hoàn thành xử lý") for p in completed)
    finally:
        receiver.stop()
