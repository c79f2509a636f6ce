"""E2E: the seed's three directives arrive as edXML packets and live their lives over real gunicorn
services, workers, PostgreSQL, RabbitMQ and S3 — routed to the right unit queues, one revoked by a
revocation packet (its units told, REST and the archive's package show it), one updated by an update packet
that moves its due date (the open tasks move, each unit told), one replaced over REST."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import bagit
import pytest
import requests
from test_routing_e2e import expected_tasks, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
NAMES = ("1393-CVT-CL", "120-KH-BCD", "171-CV-BTGTU")
XML = {"Content-Type": "application/xml"}


@pytest.fixture(scope="module")
def lifecycle_env(
    pg_database_factory: Callable[[], str], amqp_vhost_factory: Callable[..., str]
) -> dict[str, str]:
    """Own databases and broker vhost: no other module's worker takes these events or unit messages."""
    return {
        "DOCROUTE_AMQP_URL": amqp_vhost_factory(session=True),
        "DOCROUTE_INTAKE_DATABASE_URL": pg_database_factory(),
        "DOCROUTE_ROUTING_DATABASE_URL": pg_database_factory(),
        "DOCROUTE_ARCHIVE_DATABASE_URL": pg_database_factory(),
        "DOCROUTE_LEASE_SCAN_SECONDS": "0.5",
    }


@pytest.fixture(scope="module")
def stack(start_service: Callable[..., str], lifecycle_env: dict[str, str]) -> dict[str, str]:
    """The three services (their workers start once the units and rules are in)."""
    urls = {svc: start_service(svc, env=lifecycle_env) for svc in ("intake", "routing", "archive")}
    return urls | {"amqp": lifecycle_env["DOCROUTE_AMQP_URL"]}


def unit_messages(amqp_url: str, unit: str) -> list[dict[str, Any]]:
    """Everything waiting on the unit's task queue now (taken off it, as docroute-unit would)."""
    from kombu import Connection, Queue
    from shared.naming import unit_queue

    found: list[dict[str, Any]] = []
    with Connection(amqp_url, connect_timeout=5) as conn:
        queue = Queue(unit_queue(unit), no_declare=True)(conn.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            body = message.body
            found.append(json.loads(body.decode("utf-8") if isinstance(body, bytes) else body))
    return found


def collect(amqp_url: str, units: set[str], kind: str, want: dict[str, set[str]]) -> dict[str, set[str]]:
    """Reads the units' queues until each unit has got `kind` messages for the tasks in `want`."""
    got: dict[str, set[str]] = {unit: set() for unit in units}

    def complete() -> bool:
        for unit in units:
            for message in unit_messages(amqp_url, unit):
                if message["type"] == kind:
                    assert message["payload"]["unit"] == unit
                    got[unit].add(message["payload"]["id"])
        return all(want.get(unit, set()) <= got[unit] for unit in units)

    wait_for(complete, timeout=60, interval=0.3)
    return got


def test_edxml_packets_register_route_revoke_update_and_replace(
    stack: dict[str, str],
    lifecycle_env: dict[str, str],
    start_worker: Callable[..., object],
    e2e_env: Any,
    tmp_path: Path,
) -> None:
    intake, routing, archive, amqp = stack["intake"], stack["routing"], stack["archive"], stack["amqp"]
    env = lifecycle_env
    clerk, auditor = e2e_env.auth("clerk"), e2e_env.auth("auditor")
    for method, path, name in (
        ("POST", "/v1/units:import", "units.yaml"),
        ("PUT", "/v1/rules", "rules.yaml"),
    ):
        loaded = requests.request(
            method,
            f"{routing}{path}",
            data=(SAMPLES / name).read_bytes(),
            headers=clerk | {"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert loaded.status_code in (200, 201), loaded.text
    for svc in ("routing", "intake", "archive"):
        start_worker(svc, env=env)

    # 1. Each of the seed's directives as its edXML packet: registered, routed to the right unit queues.
    packets = {name: (SAMPLES / "edxml" / f"{name}.xml").read_bytes() for name in NAMES}
    ids: dict[str, str] = {}
    for name in NAMES:
        created = requests.post(
            f"{intake}/v1/edxml", data=packets[name], headers=e2e_env.auth("submitter") | XML, timeout=30
        )
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]

    def progress(name_or_id: str) -> dict[str, Any] | None:
        directive_id = ids.get(name_or_id, name_or_id)
        r = requests.get(f"{routing}/v1/directives/{directive_id}/progress", headers=clerk, timeout=10)
        return r.json() if r.status_code == 200 else None

    expected = expected_tasks()
    tasks: dict[str, dict[str, str]] = {}  # name -> task id -> unit
    for name in NAMES:
        got = wait_for(lambda n=name: progress(n), timeout=60)
        assert got is not None, f"{name} never reached routing"
        assert {x["unit"]: x["role"] for x in got["tasks"]} == expected[name]
        tasks[name] = {x["task_id"]: x["unit"] for x in got["tasks"]}
    every_unit = {unit for per in tasks.values() for unit in per.values()}
    wanted: dict[str, set[str]] = {}
    for per in tasks.values():
        for task_id, unit in per.items():
            wanted.setdefault(unit, set()).add(task_id)
    offered = collect(amqp, every_unit, "routing.task_offered", wanted)
    for unit, task_ids in wanted.items():
        assert task_ids <= offered[unit], f"{unit} was not offered {task_ids - offered[unit]}"

    # 2. A revocation packet for the food-safety plan: its units are told, REST shows it, the archive too.
    revocation = packets["120-KH-BCD"].replace(
        b"<edXML:BussinessDocType>0</edXML:BussinessDocType>",
        "<edXML:BussinessDocType>1</edXML:BussinessDocType>"
        "<edXML:BussinessDocReason>Thu hồi để ban hành lại kế hoạch</edXML:BussinessDocReason>".encode(),
    )
    revoked = requests.post(
        f"{intake}/v1/edxml", data=revocation, headers=e2e_env.auth("submitter") | XML, timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    food = tasks["120-KH-BCD"]
    cancelled = collect(
        amqp,
        set(food.values()),
        "routing.task_cancelled",
        {u: {t for t, v in food.items() if v == u} for u in food.values()},
    )
    assert set().union(*cancelled.values()) == set(food)
    assert wait_for(lambda: (progress("120-KH-BCD") or {}).get("status") == "revoked")
    assert progress("120-KH-BCD")["counts"] == {"cancelled": len(food)}
    task_id, unit = next(iter(food.items()))
    seen = requests.get(
        f"{routing}/v1/tasks/{task_id}", headers=e2e_env.auth("unit", unit), timeout=10
    ).json()
    assert seen["status"] == "cancelled"
    assert seen["history"][-1]["note"] == "Văn bản bị thu hồi: Thu hồi để ban hành lại kế hoạch"
    register = requests.get(f"{intake}/v1/directives/{ids['120-KH-BCD']}", headers=clerk, timeout=10).json()
    assert register["status"] == "revoked"

    def package(directive_id: str, name: str) -> Path:
        r = requests.get(f"{archive}/v1/directives/{directive_id}/package", headers=auditor, timeout=60)
        assert r.status_code == 200, r.text
        zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path / name)
        (bag_dir,) = list((tmp_path / name).iterdir())
        bagit.Bag(str(bag_dir)).validate()
        return bag_dir

    def archived(directive_id: str, action: str) -> bool:
        r = requests.get(
            f"{archive}/v1/audit",
            params={"directive": directive_id, "per_page": 100},
            headers=auditor,
            timeout=10,
        )
        return r.status_code == 200 and action in [e["action"] for e in r.json()["items"]]

    assert wait_for(lambda: archived(ids["120-KH-BCD"], "directive_revoked"), timeout=60)
    bag = package(ids["120-KH-BCD"], "revoked")
    assert revocation in [p.read_bytes() for p in (bag / "data" / "records").glob("*/*")]
    history = json.loads((bag / "data" / "tasks.json").read_text(encoding="utf-8"))
    assert "intake.directive_revoked" in [e["event_type"] for e in history]

    # 3. An update packet giving the i-Speed letter a due date: its open tasks move, each unit is told.
    due = date.today() + timedelta(days=7)
    update = (
        packets["1393-CVT-CL"]
        .replace(
            b"<edXML:BussinessDocType>0</edXML:BussinessDocType>",
            "<edXML:BussinessDocType>2</edXML:BussinessDocType>"
            "<edXML:BussinessDocReason>Bổ sung hạn xử lý</edXML:BussinessDocReason>".encode(),
        )
        .replace(
            b"</edXML:Subject>", f"</edXML:Subject><edXML:DueDate>{due:%Y/%m/%d}</edXML:DueDate>".encode(), 1
        )
    )
    updated = requests.post(
        f"{intake}/v1/edxml", data=update, headers=e2e_env.auth("submitter") | XML, timeout=30
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2 and updated.json()["due_date"] == due.isoformat()
    ispeed = tasks["1393-CVT-CL"]

    def moved() -> bool:
        now = progress("1393-CVT-CL") or {}
        return now.get("revision") == 2 and {x["due_date"] for x in now["tasks"]} == {due.isoformat()}

    assert wait_for(moved, timeout=60), progress("1393-CVT-CL")
    told = collect(
        amqp,
        set(ispeed.values()),
        "routing.task_updated",
        {u: {t for t, v in ispeed.items() if v == u} for u in ispeed.values()},
    )
    assert set().union(*told.values()) == set(ispeed)
    revisions = requests.get(
        f"{intake}/v1/directives/{ids['1393-CVT-CL']}/revisions", headers=clerk, timeout=10
    )
    assert [item["revision"] for item in revisions.json()["items"]] == [1, 2]
    assert revisions.json()["items"][1]["changes"]["due_date"] == {"from": None, "to": due.isoformat()}
    assert wait_for(lambda: archived(ids["1393-CVT-CL"], "directive_updated"), timeout=60)
    bag = package(ids["1393-CVT-CL"], "updated")
    assert update in [p.read_bytes() for p in (bag / "data" / "records").glob("*/*")]

    # 4. The press-award letter replaced over REST: the new one is routed, the old one's tasks cancelled.
    metadata = json.loads((SAMPLES / "directives" / "171-CV-BTGTU.json").read_text(encoding="utf-8"))
    metadata["number"] = "175-CV/BTGTU"
    pdf = packets["171-CV-BTGTU"]  # any accepted file would do; the packet's own is a PDF inside
    from intake.domain import edxml

    [attachment] = edxml.read_packet(pdf).attachments
    replaced = requests.post(
        f"{intake}/v1/directives/{ids['171-CV-BTGTU']}:replace",
        params={"reason": "Thay thế công văn 171-CV/BTGTU"},
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        files=[("files", ("175-CV-BTGTU.pdf", attachment.data + b"\n% 175", "application/pdf"))],
        headers=clerk,
        timeout=30,
    )
    assert replaced.status_code == 201, replaced.text
    new_id = replaced.json()["id"]
    assert replaced.json()["replaces"]["id"] == ids["171-CV-BTGTU"]
    assert wait_for(lambda: (progress("171-CV-BTGTU") or {}).get("status") == "replaced", timeout=60)
    old = progress("171-CV-BTGTU")
    assert old["replaced_by"] == new_id and set(old["counts"]) == {"cancelled"}
    new = wait_for(lambda: progress(new_id), timeout=60)
    assert new["replaces"] == [ids["171-CV-BTGTU"]]
    assert {x["unit"]: x["role"] for x in new["tasks"]} == expected["171-CV-BTGTU"]
