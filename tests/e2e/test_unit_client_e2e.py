"""E2E: a unit takes its task over AMQP with `docroute-unit` and its own read-only broker account."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CLIENT = ROOT / ".venv" / "bin" / "docroute-unit"


@pytest.fixture(scope="module")
def stack(e2e_stack: Callable[..., Any]) -> Iterator[Any]:
    # Own databases and broker vhost: another module's routing worker must not take these events.
    with e2e_stack(databases=("intake", "routing")) as running:
        yield running.start("intake", "routing", workers=("routing", "intake"))


def unit_account(amqp_url: str, unit: str) -> str:
    """A broker user that may only read its own unit's queue, as deploy/k8s creates one per unit."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path.lstrip("/"))
    user, password = f"unit-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    queue = "^routing\\.tasks\\." + unit.replace(".", "\\.") + "$"
    for args in (["add_user", user, password], ["set_permissions", "-p", vhost, user, "^$", "^$", queue]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)
    return f"amqp://{user}:{password}@{parts.hostname}:{parts.port}/{parts.path.lstrip('/')}"


def test_a_unit_takes_its_task_over_amqp_and_routing_records_the_receipt(
    stack: Any, e2e_env: Any, make_pdf: Callable[[str], bytes]
) -> None:
    routing, intake = stack.url("routing"), stack.url("intake")
    clerk = e2e_env.auth("clerk")
    for path, method, name in (
        ("/v1/units:import", "post", "units.yaml"),
        ("/v1/rules", "put", "rules.yaml"),
    ):
        r = getattr(requests, method)(
            routing + path,
            data=(SAMPLES / name).read_bytes(),
            headers=clerk | {"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert r.ok, r.text

    metadata = json.loads((SAMPLES / "directives" / "120-KH-BCD.json").read_text(encoding="utf-8"))
    metadata["number"] = f"{uuid.uuid4().int % 9000 + 1000}/KH-BCĐ"
    r = requests.post(
        f"{intake}/v1/directives",
        headers=e2e_env.auth("submitter"),
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        files=[("files", ("Kế hoạch.pdf", make_pdf("unit client e2e"), "application/pdf"))],
        timeout=30,
    )
    assert r.status_code == 201, r.text
    directive_id = r.json()["id"]

    amqp_url = unit_account(stack.amqp_url, "SYT")
    token = e2e_env.token("unit", "SYT")
    result = subprocess.run(
        [
            str(CLIENT),
            "--amqp-url",
            amqp_url,
            "--unit",
            "SYT",
            "--routing-url",
            routing,
            "--token",
            token,
            "--max-messages",
            "1",
            "--idle-exit",
            "60",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    (line,) = result.stdout.decode("utf-8").splitlines()
    handed_on = json.loads(line)
    task = handed_on.get("payload", handed_on)
    assert task["directive_id"] == directive_id
    assert task["unit"] == "SYT" and task["role"] == "phoi_hop"
    assert task["subject"] == metadata["subject"]  # Vietnamese intact end to end

    # The client acknowledged over REST before acking the broker: routing's ledger says received.
    unit_headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    while True:
        status = requests.get(f"{routing}/v1/tasks/{task['id']}", headers=unit_headers, timeout=10).json()
        if status["status"] == "received" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status["status"] == "received"
    # And it is not offered again over REST.
    polled = requests.post(
        f"{routing}/v1/units/SYT/tasks:poll",
        json={"max": 10, "wait_seconds": 0},
        headers=unit_headers,
        timeout=10,
    )
    assert polled.status_code == 200 and polled.json()["items"] == []
