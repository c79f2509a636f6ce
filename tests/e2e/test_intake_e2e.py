"""E2E: the intake service as real gunicorn + worker processes on PostgreSQL, RabbitMQ and S3 (moto)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "directives"
NAMES = ("1393-CVT-CL", "171-CV-BTGTU", "120-KH-BCD")


@pytest.fixture(scope="module")
def intake_stack(
    start_service: Callable[..., str],
    start_worker: Callable[..., object],
    pg_database_factory: Callable[[], str],
) -> str:
    """An intake of its own (own database), so other e2e modules' submissions cannot collide with ours."""
    env = {"DOCROUTE_INTAKE_DATABASE_URL": pg_database_factory(), "DOCROUTE_ORGANISATION": "STTTT"}
    url = start_service("intake", env=env)
    start_worker("intake", env=env)
    return url


def test_sample_directives_round_trip_and_their_events_reach_rabbitmq(
    intake_stack: str, token: Callable[..., str], event_tap, make_pdf: Callable[[str], bytes]
) -> None:
    tap = event_tap("intake.events", "intake.directive_registered.v1")
    clerk = {"Authorization": f"Bearer {token('clerk')}"}
    submitter = {"Authorization": f"Bearer {token('submitter')}"}
    created: dict[str, dict] = {}
    pdfs: dict[str, bytes] = {}
    for name in NAMES:
        metadata = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
        pdfs[name] = make_pdf(f"docroute {name}")
        response = requests.post(
            f"{intake_stack}/v1/directives",
            headers={**submitter, "Idempotency-Key": f"e2e-{name}"},
            data={"metadata": json.dumps(metadata, ensure_ascii=False)},
            files=[("files", (f"Văn bản {name}.pdf", pdfs[name], "application/pdf"))],
            timeout=30,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["Location"] == f"/v1/directives/{body['id']}"
        assert body["status"] == "registered"
        assert body["issuer"]["name"] == metadata["issuer"]["name"]
        assert body["subject"] == metadata["subject"]
        created[name] = body
    assert sorted(d["arrival_number"] for d in created.values()) == [1, 2, 3]
    assert created["120-KH-BCD"]["code_notation"] == "KH-BCĐ"
    assert created["171-CV-BTGTU"]["code_notation"] == "CV/BTGTU"

    # Read back: metadata, the register, the exact attachment bytes.
    for name, body in created.items():
        again = requests.get(f"{intake_stack}{body['url']}", headers=clerk, timeout=10)
        assert again.status_code == 200
        assert again.json() == body
        [attachment] = body["attachments"]
        download = requests.get(f"{intake_stack}{attachment['url']}", headers=clerk, timeout=10)
        assert download.status_code == 200
        assert download.content == pdfs[name]
        assert hashlib.sha256(download.content).hexdigest() == attachment["sha256"]
        assert "filename*=UTF-8''V%C4%83n%20b%E1%BA%A3n" in download.headers["Content-Disposition"]
    register = requests.get(
        f"{intake_stack}/v1/directives", params={"q": "thuc pham", "per_page": 100}, headers=clerk, timeout=10
    ).json()
    assert [d["id"] for d in register["items"]] == [created["120-KH-BCD"]["id"]]
    listing = requests.get(f"{intake_stack}/v1/directives", headers=clerk, timeout=10).json()
    assert listing["total"] == 3
    csv_text = requests.get(f"{intake_stack}/v1/register.csv", headers=clerk, timeout=10).content.decode(
        "utf-8-sig"
    )
    assert "Ban Tuyên giáo Tỉnh ủy Bình Phước" in csv_text

    # The worker process relayed one event per directive to intake.events.
    ids = {body["id"] for body in created.values()}
    events = tap.collect(lambda env: env["payload"]["directive_id"] in ids, count=3, timeout=30)
    assert {env["payload"]["directive_id"] for env in events} == ids
    for env in events:
        assert env["_routing_key"] == "intake.directive_registered.v1"
        assert env["producer"] == "intake"
        payload = env["payload"]
        body = next(b for b in created.values() if b["id"] == payload["directive_id"])
        assert payload["arrival_number"] == body["arrival_number"]
        assert payload["metadata"]["number"] == body["number"]
        [attachment] = payload["attachments"]
        assert attachment["sha256"] == body["attachments"][0]["sha256"]
        assert attachment["key"] == f"directives/{body['id']}/{attachment['sha256']}"

    # A repeated submission with the same key is answered from the first registration, no new event.
    metadata = json.loads((SAMPLES / "1393-CVT-CL.json").read_text(encoding="utf-8"))
    repeat = requests.post(
        f"{intake_stack}/v1/directives",
        headers={**submitter, "Idempotency-Key": "e2e-1393-CVT-CL"},
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        files=[("files", ("Văn bản 1393-CVT-CL.pdf", pdfs["1393-CVT-CL"], "application/pdf"))],
        timeout=30,
    )
    assert repeat.status_code == 201
    assert repeat.json()["id"] == created["1393-CVT-CL"]["id"]
    assert tap.collect(lambda env: True, count=1, timeout=1.0) == []


def test_refusals_over_real_http(intake_stack: str, token: Callable[..., str]) -> None:
    metadata = json.loads((SAMPLES / "1393-CVT-CL.json").read_text(encoding="utf-8"))
    secret = {**metadata, "confidentiality": "tuyet_mat", "number": "9/CVT-CL"}
    response = requests.post(
        f"{intake_stack}/v1/directives",
        json=secret,
        headers={"Authorization": f"Bearer {token('clerk')}"},
        timeout=10,
    )
    assert response.status_code == 422
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "confidentiality" in response.json()["errors"]
    assert requests.post(f"{intake_stack}/v1/directives", json=metadata, timeout=10).status_code == 401
    health = requests.get(f"{intake_stack}/readyz", timeout=10)
    assert health.status_code == 200, health.text


def _worker_peaks(master_pid: int) -> dict[int, int]:
    """Peak resident memory (VmHWM, bytes) of each gunicorn worker process under the master."""
    import psutil

    peaks: dict[int, int] = {}
    for child in psutil.Process(master_pid).children():
        for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks[child.pid] = int(line.split()[1]) * 1024
    return peaks


# 64 MiB through gunicorn, the spool and the S3 server (which reads each object back): minutes on a busy host.
@pytest.mark.timeout(600)
def test_a_large_json_upload_is_spooled_not_held_in_memory(
    intake_stack: str, token: Callable[..., str], _processes, make_pdf: Callable[[str], bytes]
) -> None:
    import base64
    import os

    (server,) = [p for p in _processes if p.base_url == intake_stack]
    before = _worker_peaks(server.proc.pid)
    files = [make_pdf("e2e large") + os.urandom(16 * 1024 * 1024) + b"\n%%EOF\n" for _ in range(3)]
    metadata = json.loads((SAMPLES / "1393-CVT-CL.json").read_text(encoding="utf-8"))
    metadata.update(number="7001/CVT-CL", subject="Tệp lớn qua JSON")
    metadata["attachments"] = [
        {
            "filename": f"Phụ lục {i}.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(f).decode(),
        }
        for i, f in enumerate(files)
    ]
    body = json.dumps(metadata, ensure_ascii=False).encode()
    response = requests.post(
        f"{intake_stack}/v1/directives",
        data=body,
        headers={"Authorization": f"Bearer {token('submitter')}", "Content-Type": "application/json"},
        timeout=300,
    )
    assert response.status_code == 201, response.text
    after = _worker_peaks(server.proc.pid)
    growth = max(after[pid] - before.get(pid, 0) for pid in after)
    # Held in memory as before the fix this body (64 MiB) cost about three times its size; spooled, one
    # worker holds at most one file (16 MiB) while the S3 client sends it and reads it back (moto does not
    # check checksums, so the adapter verifies by reading): well under the body's own size.
    assert growth < len(body), (growth, len(body))
    sha = hashlib.sha256(files[2]).hexdigest()
    assert response.json()["attachments"][2]["sha256"] == sha


def test_docs_work_offline_from_the_same_origin(intake_stack: str) -> None:
    import re

    page = requests.get(f"{intake_stack}/docs", timeout=10)
    assert page.status_code == 200
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(url.startswith("/docs/assets/") for url in urls)
    for url in urls:
        asset = requests.get(f"{intake_stack}{url}", timeout=10)
        assert asset.status_code == 200, url
    spec = requests.get(f"{intake_stack}/openapi.json", timeout=10)
    assert spec.headers["X-Content-Type-Options"] == "nosniff"
