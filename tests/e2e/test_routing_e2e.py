"""E2E: real gunicorn intake + routing and their workers turn the three sample directives into tasks."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.unit_tasks import take_tasks, tasks_by_unit

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
NAMES = ("1393-CVT-CL", "120-KH-BCD", "171-CV-BTGTU")


@pytest.fixture(scope="module")
def stack(e2e_stack: Callable[..., Any]) -> Iterator[Any]:
    """Own databases and broker vhost, so other e2e modules' workers never take this module's events."""
    env = {
        "DOCROUTE_ORGANISATION": "STTTT",
        "DOCROUTE_OVERDUE_SCAN_SECONDS": "1",
        "DOCROUTE_LEASE_SCAN_SECONDS": "0.5",
    }
    with e2e_stack(env, databases=("intake", "routing")) as running:
        yield running.start("intake", "routing", workers=("routing", "intake"))


def expected_tasks() -> dict[str, dict[str, str]]:
    """What the seed dispatch did, worked out from units.yaml alone (not from routing's code)."""
    units = yaml.safe_load((SAMPLES / "units.yaml").read_text(encoding="utf-8"))["units"]

    def members(*groups: str) -> set[str]:
        return {u["code"] for u in units if set(u["groups"]) & set(groups)}

    wide = members("bao-chi", "ttdt", "phong-vhtt")
    return {
        "1393-CVT-CL": dict.fromkeys(wide, "chu_tri"),
        "120-KH-BCD": dict.fromkeys(wide, "chu_tri") | {"SYT": "phoi_hop"},
        "171-CV-BTGTU": dict.fromkeys(members("ttdt"), "chu_tri"),
    }


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def test_sample_directives_become_the_seed_dispatch_tasks_and_finish(
    stack: Any, e2e_env: Any, make_pdf: Callable[[str], bytes]
) -> None:
    routing, intake = stack.url("routing"), stack.url("intake")
    clerk = e2e_env.auth("clerk")
    r = requests.post(
        f"{routing}/v1/units:import",
        data=(SAMPLES / "units.yaml").read_bytes(),
        headers=clerk | {"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.put(
        f"{routing}/v1/rules",
        data=(SAMPLES / "rules.yaml").read_bytes(),
        headers=clerk | {"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text

    directives: dict[str, str] = {}
    pdfs: dict[str, bytes] = {}
    for name in NAMES:
        metadata = json.loads((SAMPLES / "directives" / f"{name}.json").read_text(encoding="utf-8"))
        pdfs[name] = make_pdf(f"routing e2e {name}")
        r = requests.post(
            f"{intake}/v1/directives",
            headers=e2e_env.auth("submitter") | {"Idempotency-Key": f"routing-e2e-{name}"},
            data={"metadata": json.dumps(metadata, ensure_ascii=False)},
            files=[("files", (f"Văn bản {name}.pdf", pdfs[name], "application/pdf"))],
            timeout=30,
        )
        assert r.status_code == 201, r.text
        directives[name] = r.json()["id"]

    expected = expected_tasks()

    def progress(name: str) -> dict[str, Any] | None:
        r = requests.get(f"{routing}/v1/directives/{directives[name]}/progress", headers=clerk, timeout=10)
        return r.json() if r.status_code == 200 else None

    task_units: dict[str, str] = {}
    for name in NAMES:
        got = wait_for(lambda n=name: progress(n), timeout=40)
        assert got is not None, f"{name} never reached routing"
        assert {x["unit"]: x["role"] for x in got["tasks"]} == expected[name]
        assert got["done"] is False
        task_units.update({x["task_id"]: x["unit"] for x in got["tasks"]})
    food = progress("120-KH-BCD")
    assert food is not None and {x["due_date"] for x in food["tasks"]} == {"2021-05-15"}

    # Units poll their queues, take the attachment, ack and complete until every directive is done.
    checked_attachment = False
    for unit, wanted in tasks_by_unit(task_units):
        headers = e2e_env.auth("unit", unit)
        for n, task in enumerate(take_tasks(routing, unit, wanted, headers, wait_seconds=2), start=1):
            if not checked_attachment:
                [att] = task["attachments"]
                blob = requests.get(f"{routing}{att['href']}", headers=headers, timeout=10)
                assert blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == att["sha256"]
                assert blob.content in pdfs.values()
                checked_attachment = True
            acked = requests.post(f"{routing}/v1/tasks/{task['id']}/ack", headers=headers, timeout=10)
            assert acked.json()["status"] == "received"
            done = requests.post(
                f"{routing}/v1/tasks/{task['id']}/status",
                json={"status": "completed", "note": "Đã triển khai", "reply_number": f"{n}/BC"},
                headers=headers,
                timeout=10,
            )
            assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    assert checked_attachment

    for name in NAMES:
        final = progress(name)
        assert final is not None and final["done"] is True
        assert final["counts"] == {"completed": len(expected[name])}


def test_long_polls_never_hold_the_threads_health_and_other_requests_need(
    start_service: Callable[..., str], pg_database_factory: Callable[[], str], e2e_env: Any
) -> None:
    """Real gunicorn, 2 workers of 4 threads: each process admits 2 long-polls (half its threads) and answers
    429 with Retry-After beyond; /healthz and the ledger answer while the admitted polls still wait."""
    from concurrent.futures import ThreadPoolExecutor

    routing = start_service(
        "routing",
        env={"DOCROUTE_ROUTING_DATABASE_URL": pg_database_factory(), "DOCROUTE_WEB_THREADS": "4"},
    )
    r = requests.post(
        f"{routing}/v1/units:import",
        data=(SAMPLES / "units.yaml").read_bytes(),
        headers=e2e_env.auth("clerk") | {"Content-Type": "application/yaml"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    units = [u["code"] for u in yaml.safe_load((SAMPLES / "units.yaml").read_text(encoding="utf-8"))["units"]]
    wait = 20

    def long_poll(unit: str) -> requests.Response:
        return requests.post(
            f"{routing}/v1/units/{unit}/tasks:poll",
            json={"wait_seconds": wait},
            headers=e2e_env.auth("unit", unit),
            timeout=wait + 30,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        polls = [pool.submit(long_poll, unit) for unit in units[:8]]
        # At most 2 places in each of the 2 processes: at least 4 of the 8 are refused at once.
        refused = wait_for(
            lambda: [f for f in polls if f.done() and f.result().status_code == 429][3:] and True
        )
        assert refused, [f.result().status_code for f in polls if f.done()]
        started = time.monotonic()
        health = requests.get(f"{routing}/healthz", timeout=wait)
        ledger = requests.get(
            f"{routing}/v1/units/{units[0]}/tasks", headers=e2e_env.auth("auditor"), timeout=wait
        )
        answered_in = time.monotonic() - started
        waiting = [f for f in polls if not f.done()]
        # The admitted polls are still waiting (they end only after `wait` seconds): health did not queue
        # behind them.
        assert health.status_code == 200 and ledger.status_code == 200
        assert waiting and answered_in < wait, answered_in
        done = [f.result() for f in polls]
    statuses = sorted(r.status_code for r in done)
    assert statuses.count(200) <= 4 and statuses.count(200) + statuses.count(429) == 8, statuses
    too_many = [r for r in done if r.status_code == 429]
    assert all(r.headers["Retry-After"].isdigit() for r in too_many)
    assert all(r.headers["Content-Type"] == "application/problem+json" for r in too_many)
