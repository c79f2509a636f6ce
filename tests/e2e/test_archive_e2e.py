"""E2E: a signed directive submitted to intake ends in the archive, verified, downloadable and packaged — on
each S3 server (moto, and a real store: Ceph RGW)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import sys
import time
import uuid
import zipfile
from pathlib import Path

import bagit
import pytest
import requests

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE = SAMPLES / "directives" / "1393-CVT-CL.json"
# docs/operations.md: RGW 16 checks Content-MD5 but ignores If-None-Match on versioned buckets (the archive's
# PostgreSQL key lock stands in); moto honours the condition but checks no digest (the object is read back).
WRITE_PLAN = {
    "rgw": {"integrity": "content-md5", "single_version": "key-lock", "lock": "on-put"},
    "moto": {"integrity": "read-back", "single_version": "conditional-put", "lock": "after-verify"},
}


def _pdf_helpers():
    # The archive tests' PDF/CA helper, loaded by path: tests/ is not a package.
    path = Path(__file__).resolve().parents[1] / "archive" / "archive_pdfs.py"
    spec = importlib.util.spec_from_file_location("archive_pdfs_e2e", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _poll(fn, timeout: float = 40.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


@pytest.fixture
def stack(e2e_stack, s3_server):
    """intake, routing and the archive on their own vhost and databases, storing on `s3_server`."""
    suffix = uuid.uuid4().hex[:8]
    buckets = {
        "DOCROUTE_STAGING_BUCKET": f"docroute-staging-{suffix}",
        "DOCROUTE_ARCHIVE_BUCKET": f"docroute-archive-{suffix}",
    }
    with e2e_stack(s3_server.env() | buckets) as running:
        yield running


def test_submitted_directive_is_archived_verified_and_exported(e2e_env, stack, s3_server, tmp_path):
    pdfs = _pdf_helpers()
    pki = pdfs.make_pki()
    signed = pdfs.sign_pdf(pdfs.minimal_pdf("Cong van 1393/CVT-CL"), pki)
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(pki.ca_pem)
    archive_env = {"DOCROUTE_TRUST_STORE": str(bundle), "DOCROUTE_AUDIT_CHECKPOINT_SECONDS": "1"}

    intake_url = stack.service("intake")
    stack.worker("intake")
    archive_url = stack.service("archive", env=archive_env)
    stack.worker("archive", env=archive_env)
    # The archive learnt what its store does and keeps each guarantee by the means that store offers.
    ready = requests.get(f"{archive_url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["object_store"]["write_plan"] == WRITE_PLAN[s3_server.name]
    # Routing too: its tasks reach the archive's history and audit log as one event per directive.
    routing_url = stack.service("routing")
    clerk = e2e_env.auth("clerk")
    for method, path, name in (
        ("POST", "/v1/units:import", "units.yaml"),
        ("PUT", "/v1/rules", "rules.yaml"),
    ):
        loaded = requests.request(
            method,
            f"{routing_url}{path}",
            data=(SAMPLES / name).read_bytes(),
            headers=clerk | {"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert loaded.status_code in (200, 201), loaded.text
    stack.worker("routing")

    body = json.loads(SAMPLE.read_text(encoding="utf-8"))
    body["attachments"] = [
        {
            "filename": "Công văn 1393.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(signed).decode(),
        }
    ]
    created = requests.post(
        f"{intake_url}/v1/directives", json=body, headers=e2e_env.auth("submitter"), timeout=30
    )
    assert created.status_code == 201, created.text
    directive_id = created.json()["id"]
    auditor = e2e_env.auth("auditor")

    def archived():
        resp = requests.get(
            f"{archive_url}/v1/records", params={"directive": directive_id}, headers=auditor, timeout=10
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["items"] if resp.json()["total"] else None

    [record] = _poll(archived)
    assert record["filename"] == "Công văn 1393.pdf"
    assert record["sha256"] == hashlib.sha256(signed).hexdigest()
    assert record["signature_status"] == "valid"
    assert record["lock_mode"] == "GOVERNANCE" and record["retention_class"] == "10"

    progress = _poll(
        lambda: (
            requests.get(f"{routing_url}/v1/directives/{directive_id}/progress", headers=clerk, timeout=10)
            .json()
            .get("tasks")
        )
    )
    routed = {task["task_id"]: task["unit"] for task in progress}
    assert len(routed) == 24  # the i-Speed rule: every unit of the sample list

    def routing_audit(action: str) -> list[dict]:
        """The archive's audit entries of `action` that routing's events made for this directive."""
        resp = requests.get(
            f"{archive_url}/v1/audit",
            params={"directive": directive_id, "actor": "service:routing", "per_page": 100},
            headers=auditor,
            timeout=10,
        ).json()
        return [e for e in resp["items"] if e["action"] == action]

    def all_assigned() -> list[dict] | None:
        found = routing_audit("task_assigned")
        return found if len(found) >= len(routed) else None

    entries = _poll(all_assigned)
    assert {e["details"]["task_id"]: e["details"]["unit"] for e in entries} == routed
    # A unit's acknowledgement reaches the archive too (one routing.tasks_acknowledged event).
    acked_id, acked_unit = next((x["task_id"], x["unit"]) for x in progress if x["role"] != "de_biet")
    ack = requests.post(
        f"{routing_url}/v1/units/{acked_unit}/tasks:ack",
        json={"ids": [acked_id]},
        headers=e2e_env.auth("unit", acked_unit),
        timeout=10,
    )
    assert ack.status_code == 200 and ack.json()["items"][0]["result"] == "acked", ack.text

    [change] = _poll(lambda: routing_audit("task_status_changed"))
    assert change["details"]["task_id"] == acked_id and change["details"]["status"] == "received"

    content = requests.get(f"{archive_url}/v1/records/{record['id']}/content", headers=auditor, timeout=30)
    assert content.status_code == 200 and content.content == signed

    found = requests.get(
        f"{archive_url}/v1/records", params={"q": "i-speed viet nam"}, headers=auditor, timeout=10
    )
    assert record["id"] in [r["id"] for r in found.json()["items"]]

    package = requests.get(f"{archive_url}/v1/directives/{directive_id}/package", headers=auditor, timeout=60)
    assert package.status_code == 200, package.text
    zipfile.ZipFile(io.BytesIO(package.content)).extractall(tmp_path / "bag")
    (bag_dir,) = list((tmp_path / "bag").iterdir())
    bagit.Bag(str(bag_dir)).validate()
    assert signed in [p.read_bytes() for p in (bag_dir / "data" / "records").glob("*/*.pdf")]
    history = json.loads((bag_dir / "data" / "tasks.json").read_text(encoding="utf-8"))
    assigned = [e for e in history if e["event_type"] == "routing.task_assigned"]
    assert sorted(e["task_id"] for e in assigned) == sorted(routed)
    assert [(e["event_type"], e["task_id"]) for e in history if e not in assigned] == [
        ("routing.task_status_changed", acked_id)
    ]
    assert {e["payload"]["subject"] for e in assigned} == {body["subject"]}  # Vietnamese intact
    audit = json.loads((bag_dir / "data" / "audit.json").read_text(encoding="utf-8"))
    actions = [e["action"] for e in audit]
    assert (
        actions[0] == "directive_registered"
        and "record_read" in actions
        and actions[-1] == "package_exported"
    )

    def verified():
        resp = requests.get(f"{archive_url}/v1/audit/verify", headers=auditor, timeout=10).json()
        return resp if resp.get("checkpoint") else None

    result = _poll(verified, timeout=20)
    assert result["ok"] is True and result["checkpoint"]["ok"] is True, result
