"""What the archive accepts and records (SQLite, filesystem store): refusals, cleaned names, PDF flags."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import pytest
import sqlalchemy as sa
from archive.adapters.db import audit_entries, outbox, records
from archive.archiving import handle_directive_registered
from archive.domain.acceptance import Refused, check_acceptable, scan_pdf, served_type
from archive.history import handle_task_event
from archive_active_pdfs import (
    embedded_file_pdf,
    hidden_javascript_pdf,
    javascript_pdf,
    launch_pdf,
    plain_pdf,
)
from archive_testkit import directive_event, stage, task_event
from shared.filenames import clean_filename


def _audit(engine, action: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_entries.c.details)
            .where(audit_entries.c.action == action)
            .order_by(audit_entries.c.seq)
        )
        return [json.loads(r.details) for r in rows]


def _records(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(records)))


def _archive(
    engine, vault, verifier, fs_store, data: bytes, filename: str, content_type: str = "application/pdf"
):
    staged = stage(fs_store, data, filename, content_type=content_type)
    return handle_directive_registered(
        directive_event("dir-acc", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
    )


# --- Finding 9: what the archive accepts is checked as intake checks it ------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "reason"),
    [
        (b"<html><script>alert(1)</script></html>", "a.html", "text/html", "text/html is not one"),
        (b"plain text", "a.txt", "text/plain\r\nX-Injected: 1", "is not a media type"),
        (b"not a pdf at all", "x.PDF ", "application/octet-stream", "declared as a PDF"),
        (b"not a pdf at all", "x.pdf\x00", "application/octet-stream", "declared as a PDF"),
        (b"MZ\x90\x00\x03 a Windows program", "report.pdf", "application/pdf", "Windows/DOS executable"),
        (b"\x7fELF\x02\x01\x01 a program", "bao-cao.bin", "application/octet-stream", "ELF executable"),
        (b"#!/bin/sh\nrm -rf /\n", "chay.txt", "text/plain", "interpreter line"),
        (b"harmless looking bytes", "setup.exe", "application/octet-stream", "ends in .exe"),
    ],
)
def test_files_intake_would_refuse_are_refused_and_the_refusal_is_audited(
    engine, vault, verifier, fs_store, data, filename, content_type, reason
):
    created = _archive(engine, vault, verifier, fs_store, data, filename, content_type)

    assert created == [] and _records(engine) == []
    (refusal,) = _audit(engine, "record_refused")
    assert reason in refusal["reason"]
    assert refusal["filename"] == clean_filename(filename) and refusal["filename_as_sent"] == filename
    assert _audit(engine, "directive_registered")  # the directive itself is still on record
    with engine.connect() as conn:
        keys = [r.routing_key for r in conn.execute(sa.select(outbox.c.routing_key))]
    assert "archive.record_archived.v1" not in keys


def test_a_file_over_the_archives_size_limit_or_of_another_size_than_announced_is_refused(
    engine, vault, verifier, fs_store, samples
):
    small = dataclasses.replace(vault, max_file_bytes=len(samples.unsigned) - 1)
    staged = stage(fs_store, samples.unsigned, "lớn.pdf")
    handle_directive_registered(
        directive_event("dir-big", [staged.attachment]), engine=engine, vault=small, verifier=verifier
    )
    lying = stage(fs_store, samples.unsigned, "nói dối.pdf")
    handle_directive_registered(
        directive_event("dir-lie", [{**lying.attachment, "size": 10}]),
        engine=engine,
        vault=vault,
        verifier=verifier,
    )
    assert _records(engine) == []
    reasons = [r["reason"] for r in _audit(engine, "record_refused")]
    assert "the archive's limit" in reasons[0] and "announced 10 bytes" in reasons[1]


def test_accepted_types_are_stored_normalised_and_served_only_as_accepted_types(
    engine, vault, verifier, fs_store, samples
):
    _archive(engine, vault, verifier, fs_store, samples.unsigned, "a.pdf", "Application/PDF; charset=binary")
    (row,) = _records(engine)
    assert row.content_type == "application/pdf"
    assert served_type("text/html") == "application/octet-stream"
    assert served_type("text/plain\r\nX: y") == "application/octet-stream"
    assert served_type("application/pdf") == "application/pdf"


def test_the_checks_look_at_the_cleaned_name_not_the_raw_one():
    common = {
        "content_type": "application/octet-stream",
        "announced_size": 5,
        "stored_size": 5,
        "max_bytes": 9,
    }
    with pytest.raises(Refused):
        check_acceptable(filename=clean_filename("x.PDF "), head=b"hello", tail=b"hello", **common)
    assert (
        check_acceptable(filename=clean_filename("x.txt"), head=b"hello", tail=b"hello", **common)
        == "application/octet-stream"
    )


# --- Finding 14: unit report (and attachment) file names are cleaned as intake cleans them ----------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ('bao "cao".pdf', "bao _cao_.pdf"),
        ("bao\r\ncao.pdf", "baocao.pdf"),
        ("Báo cáo tháng 4.pdf", "Báo cáo tháng 4.pdf"),
        ("x.PDF ", "x.PDF"),
        ("x.pdf\x00", "x.pdf"),
        ("..", "attachment"),
        ("evil\u202efdp.exe", "evilfdp.exe"),
        ("C:\\Users\\a\\b.pdf", "b.pdf"),
    ],
)
def test_clean_filename(raw, clean):
    assert clean_filename(raw) == clean


def test_a_long_name_keeps_its_extension_within_200_bytes():
    cleaned = clean_filename("Công văn " * 40 + ".pdf")
    assert cleaned.endswith(".pdf") and len(cleaned.encode("utf-8")) <= 200


def test_a_unit_reports_name_is_cleaned_in_the_record_and_the_audit_keeps_what_was_sent(
    engine, vault, verifier, fs_store, samples, client, auth
):
    raw = '../../báo cáo"\r\nX-Evil: 1.pdf'
    staged = stage(fs_store, samples.unsigned, raw)
    att = staged.attachment
    report = {k: att[k] for k in ("bucket", "key", "sha256", "size", "filename", "content_type")}
    handle_task_event(
        task_event("task_status_changed", "dir-rep", unit="UBND-HUYEN", to_status="done", report=report),
        engine=engine,
        vault=vault,
        verifier=verifier,
    )
    (row,) = _records(engine)
    assert row.filename == "báo cáo_X-Evil_ 1.pdf"
    assert not set('\r\n"/') & set(row.filename)
    (archived,) = _audit(engine, "record_archived")
    assert archived["filename"] == row.filename and archived["filename_as_sent"] == raw
    (event,) = _audit(engine, "task_status_changed")
    assert event["report"]["filename"] == row.filename and event["report"]["filename_as_sent"] == raw
    served = client.get(f"/v1/records/{row.id}/content", headers=auth())
    assert served.status_code == 200
    assert (
        "\r" not in served.headers["Content-Disposition"]
        and "\n" not in served.headers["Content-Disposition"]
    )


# --- Finding 15: PDFs with JavaScript, embedded files or launch actions are flagged ----------------


@pytest.mark.parametrize(
    ("make", "flags"),
    [
        (javascript_pdf, ["javascript"]),
        (launch_pdf, ["launch_action"]),
        (embedded_file_pdf, ["embedded_files"]),
        (hidden_javascript_pdf, ["javascript"]),
        (plain_pdf, []),
    ],
)
def test_active_content_is_flagged_in_the_record_the_api_and_the_package(
    engine, vault, verifier, fs_store, client, auth, tmp_path, make, flags
):
    _archive(engine, vault, verifier, fs_store, make(), "văn bản.pdf")
    (row,) = _records(engine)
    assert row.content_flags == flags
    assert client.get(f"/v1/records/{row.id}", headers=auth()).json["content_flags"] == flags
    (archived,) = _audit(engine, "record_archived")
    assert archived["content_flags"] == flags
    package = client.get("/v1/directives/dir-acc/package", headers=auth())
    with zipfile.ZipFile(io.BytesIO(package.data)) as bag:
        (name,) = [n for n in bag.namelist() if n.endswith("data/records.json")]
        assert json.loads(bag.read(name))[0]["content_flags"] == flags


def test_the_scan_budget_bounds_a_compression_bomb():
    import zlib

    bomb = zlib.compress(b"\0" * (80 * 1024 * 1024), 9)
    data = b"%PDF-1.7\n1 0 obj\n<< /Filter /FlateDecode >>\nstream\n" + bomb + b"\nendstream\n%%EOF\n"
    result = scan_pdf(data)
    assert result.flags == () and result.note is not None
