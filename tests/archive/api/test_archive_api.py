"""The archive HTTP API (SQLite + filesystem store): roles, search, verified content, fixity, holds, audit."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import bagit
import pytest
import sqlalchemy as sa
from archive.adapters import audit_log
from archive.adapters.db import audit_checkpoints, audit_entries, outbox
from archive.archiving import handle_directive_registered
from archive.audit import write_checkpoint
from archive.domain.audit import AuditEvent
from archive.fixity import run_fixity_sweep
from archive.history import handle_task_event
from archive_testkit import (
    ARCHIVE,
    directive_event,
    rechain_with_edit,
    task_event,
    write_checkpoint_killed_before_its_row,
)


@pytest.fixture
def archived(engine, vault, verifier, samples, stage_file):
    """One directive with a valid signed original and an unsigned annex, plus a task history."""
    signed = stage_file(samples.valid, "1393-CVT-CL.pdf")
    annex = stage_file(samples.unsigned, "Phụ lục kèm theo.pdf")
    handle_directive_registered(
        directive_event("dir-api", [signed.attachment, annex.attachment]),
        engine=engine,
        vault=vault,
        verifier=verifier,
    )
    handle_task_event(
        task_event("task_assigned", "dir-api", task_id="t-1", unit="STTTT"),
        engine=engine,
        vault=vault,
        verifier=verifier,
    )
    return {"signed": signed, "annex": annex}


def _records(client, auth, **query):
    resp = client.get("/v1/records", query_string=query, headers=auth())
    assert resp.status_code == 200, resp.json
    return resp.json


def _filesystem_path(vault, key: str) -> Path:
    return vault.store._paths(ARCHIVE, key)[0]


def test_records_need_auditor_or_admin(client, auth, archived):
    assert client.get("/v1/records").status_code == 401
    denied = client.get("/v1/records", headers=auth("clerk"))
    assert denied.status_code == 403
    assert denied.content_type.startswith("application/problem+json")
    assert client.get("/v1/records", headers=auth("admin")).status_code == 200


def test_search_is_diacritics_insensitive_and_paged(client, auth, archived):
    page = _records(client, auth, q="phu luc", per_page=1)
    assert page["total"] == 1 and page["per_page"] == 1
    assert page["items"][0]["filename"] == "Phụ lục kèm theo.pdf"
    assert _records(client, auth, q="i-speed")["total"] == 2  # the directive's subject
    assert _records(client, auth, issuer="cuc vien thong")["total"] == 2
    assert _records(client, auth, signature_status="valid")["items"][0]["filename"] == "1393-CVT-CL.pdf"
    assert (
        _records(client, auth, number="1393/CVT-CL", date_from="2021-04-01", date_to="2021-04-30")["total"]
        == 2
    )
    assert _records(client, auth, date_from="2022-01-01")["total"] == 0
    assert _records(client, auth, directive="other")["total"] == 0


def test_record_shows_signature_report(client, auth, archived):
    item = _records(client, auth, signature_status="valid")["items"][0]
    resp = client.get(f"/v1/records/{item['id']}", headers=auth())
    assert resp.status_code == 200
    report = resp.json["signature_report"]
    assert report["bottom_line"] == "valid"
    assert report["signatures"][0]["signer"] == "Nguyễn Văn Thử"
    assert report["signatures"][0]["covers_whole_file"] is True
    assert client.get("/v1/records/nope", headers=auth()).json["type"].endswith("/record-not-found")


def test_content_streams_exact_bytes_and_audits_the_read(client, auth, archived, samples, engine):
    item = _records(client, auth, signature_status="valid")["items"][0]
    resp = client.get(f"/v1/records/{item['id']}/content", headers=auth(sub="kiểm-toán-viên"))
    assert resp.status_code == 200
    assert resp.data == samples.valid
    assert resp.headers["X-Content-SHA256"] == item["sha256"]
    with engine.connect() as conn:
        read = conn.execute(sa.select(audit_entries).where(audit_entries.c.action == "record_read")).one()
    assert read.actor == "kiểm-toán-viên" and read.record_id == item["id"]


def test_altered_file_is_caught_not_served(client, auth, archived, vault, engine):
    item = _records(client, auth, signature_status="valid")["items"][0]
    path = _filesystem_path(vault, item["key"])
    os.chmod(path, 0o644)  # behind the service's back
    path.write_bytes(path.read_bytes().replace(b"1393", b"9393"))

    resp = client.get(f"/v1/records/{item['id']}/content", headers=auth())

    assert resp.status_code == 409
    assert resp.json["type"].endswith("/fixity-failed")
    assert b"9393" not in resp.data
    check = client.post(f"/v1/records/{item['id']}/fixity", headers=auth())
    assert check.status_code == 200 and check.json["ok"] is False
    assert client.get(f"/v1/records/{item['id']}", headers=auth()).json["fixity_status"] == "failed"
    with engine.connect() as conn:
        keys = [r.routing_key for r in conn.execute(sa.select(outbox.c.routing_key))]
    assert keys.count("archive.fixity_failed.v1") == 2


def test_fixity_sweep_reports_runs(client, auth, archived, vault, engine):
    annex = _records(client, auth, q="phu luc")["items"][0]
    path = _filesystem_path(vault, annex["key"])
    os.chmod(path, 0o644)
    path.write_bytes(b"not the original")

    summary = run_fixity_sweep(engine=engine, vault=vault, period_seconds=3600)

    assert summary.checked == 2 and summary.failed == 1
    runs = client.get("/v1/fixity/runs", headers=auth()).json
    assert runs["total"] == 1
    assert runs["items"][0]["failed"] == 1 and runs["items"][0]["failures"][0]["record_id"] == annex["id"]
    # Within the period nothing is due again.
    assert run_fixity_sweep(engine=engine, vault=vault, period_seconds=3600).checked == 0


def test_legal_hold_is_admin_only_needs_reason_and_is_audited(client, auth, archived, vault, engine):
    item = _records(client, auth)["items"][0]
    url = f"/v1/records/{item['id']}/legal-hold"
    assert (
        client.put(url, json={"legal_hold": True, "reason": "x"}, headers=auth("auditor")).status_code == 403
    )
    missing = client.put(url, json={"legal_hold": True}, headers=auth("admin"))
    assert missing.status_code == 422 and "reason" in missing.json["errors"]

    on = client.put(url, json={"legal_hold": True, "reason": "Thanh tra năm 2026"}, headers=auth("admin"))

    assert on.status_code == 200 and on.json["legal_hold"] is True
    assert vault.store.stat(ARCHIVE, item["key"]).legal_hold is True
    off = client.put(url, json={"legal_hold": False, "reason": "Kết thúc thanh tra"}, headers=auth("admin"))
    assert off.json["legal_hold"] is False and vault.store.stat(ARCHIVE, item["key"]).legal_hold is False
    audit = client.get("/v1/audit", query_string={"actor": "admin-1"}, headers=auth()).json
    assert [e["action"] for e in audit["items"]] == ["legal_hold_set", "legal_hold_lifted"]
    assert audit["items"][0]["details"]["reason"] == "Thanh tra năm 2026"


def test_audit_verify_detects_an_edited_row(client, auth, archived, engine):
    good = client.get("/v1/audit/verify", headers=auth()).json
    assert good["ok"] is True and good["count"] >= 4 and len(good["head_hash"]) == 64

    with engine.begin() as conn:
        conn.execute(sa.update(audit_entries).where(audit_entries.c.seq == 2).values(actor="kẻ gian"))

    broken = client.get("/v1/audit/verify", headers=auth()).json
    assert broken["ok"] is False and broken["broken_seq"] == 2
    assert "altered" in broken["reason"]


def test_audit_verify_reads_every_checkpoint_from_the_locked_bucket(client, auth, archived, engine, vault):
    """Finding 1 over HTTP: deleting the checkpoint rows with a re-chained edit no longer reports ok."""
    assert write_checkpoint(engine=engine, vault=vault).ok
    good = client.get("/v1/audit/verify", headers=auth()).json
    assert good["ok"] is True and good["checkpoints_checked"] == 1 and good["problems"] == []

    entries = list(audit_log.iter_entries(engine))
    with engine.begin() as conn:
        rechain_with_edit(conn, entries, seq=2)
        conn.execute(sa.delete(audit_checkpoints))

    forged = client.get("/v1/audit/verify", headers=auth()).json
    assert forged["ok"] is False and forged["broken_seq"] is None  # the chain alone looks fine
    assert forged["checkpoint"]["ok"] is False
    assert any("checkpoint rows were deleted" in p for p in forged["problems"])
    assert any("the database was rewritten" in p for p in forged["problems"])


def test_audit_verify_lists_a_checkpoint_left_without_its_row_and_stays_ok(
    client, auth, archived, engine, vault, monkeypatch
):
    """A worker killed between a checkpoint's object and its row: not tampering, only unindexed."""
    assert write_checkpoint(engine=engine, vault=vault).ok
    with engine.begin() as conn:
        audit_log.append(
            conn, AuditEvent(action="after", actor="service:archive", occurred_at=datetime.now(UTC))
        )
    orphan = write_checkpoint_killed_before_its_row(engine, vault, monkeypatch)["key"]
    answer = client.get("/v1/audit/verify", headers=auth()).json
    assert answer["ok"] is True and answer["problems"] == []
    assert answer["checkpoints_checked"] == 2 and answer["unindexed"] == [orphan]
    assert answer["checkpoint"]["key"] == orphan and answer["checkpoint"]["ok"] is True


def test_audit_list_filters_by_directive_and_time(client, auth, archived):
    page = client.get("/v1/audit", query_string={"directive": "dir-api", "per_page": 2}, headers=auth()).json
    assert page["total"] >= 4 and len(page["items"]) == 2
    assert page["items"][0]["action"] == "directive_registered"
    future = client.get("/v1/audit", query_string={"since": "2999-01-01T00:00:00+00:00"}, headers=auth()).json
    assert future["total"] == 0


def test_package_is_a_valid_bag_with_everything(client, auth, archived, samples, tmp_path):
    resp = client.get("/v1/directives/dir-api/package", headers=auth())
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    zipfile.ZipFile(io.BytesIO(resp.data)).extractall(tmp_path / "unzipped")
    (bag_dir,) = list((tmp_path / "unzipped").iterdir())
    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    assert "sha256" in bag.algorithms
    data = bag_dir / "data"
    names = {p.name for p in data.glob("records/*/*") if p.suffix == ".pdf"}
    assert names == {"1393-CVT-CL.pdf", "Phụ lục kèm theo.pdf"}
    assert samples.valid in [p.read_bytes() for p in data.glob("records/*/*.pdf")]
    assert len(list(data.glob("records/*/signature-report.json"))) == 2
    directive = json.loads((data / "directive.json").read_text(encoding="utf-8"))
    assert directive["metadata"]["issuer"]["name"] == "Cục Viễn thông"
    tasks = json.loads((data / "tasks.json").read_text(encoding="utf-8"))
    assert [t["event_type"] for t in tasks] == ["routing.task_assigned"]
    audit = json.loads((data / "audit.json").read_text(encoding="utf-8"))
    assert audit[0]["action"] == "directive_registered" and audit[-1]["action"] == "package_exported"
    assert client.get("/v1/directives/unknown/package", headers=auth()).status_code == 404


def _audit_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit_entries)).scalar_one()


def test_head_on_a_package_builds_nothing_audits_nothing_and_leaves_no_folder(
    client, auth, archived, engine, tmp_path, monkeypatch
):
    """Finding 12: each HEAD built the bag, appended package_exported and leaked its temporary folder."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = _audit_count(engine)
    for _ in range(3):
        head = client.head("/v1/directives/dir-api/package", headers=auth())
        assert head.status_code == 200 and head.mimetype == "application/zip"
        assert head.data == b""
    assert _audit_count(engine) == before
    assert list(scratch.iterdir()) == []
    assert client.head("/v1/directives/unknown/package", headers=auth()).status_code == 404
    assert client.head("/v1/directives/dir-api/package", headers=auth("clerk")).status_code == 403

    got = client.get("/v1/directives/dir-api/package", headers=auth())
    assert got.status_code == 200 and len(got.data) == int(got.headers["Content-Length"])
    got.close()
    assert _audit_count(engine) == before + 1
    assert list(scratch.iterdir()) == []  # the GET's folder is gone once the response is closed
