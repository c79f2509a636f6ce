"""Archiving from events on SQLite + the filesystem store: records, idempotency, signatures, task history."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import uuid

import pytest
import sqlalchemy as sa
from archive.adapters import audit_log
from archive.adapters.db import audit_entries, outbox, records, task_events
from archive.archiving import handle_directive_registered
from archive.history import (
    handle_directive_replaced,
    handle_directive_revoked,
    handle_directive_updated,
    handle_task_event,
    handle_tasks_acknowledged,
    handle_tasks_assigned,
)
from archive_testkit import ARCHIVE, STAGING, directive_event, task_event
from shared.envelope import Envelope
from shared.messaging import PermanentError
from shared.objectstore import ObjectLocked, ObjectNotFound, VerifiedBytes


def _outbox_types(engine) -> list[str]:
    with engine.connect() as conn:
        return [r.routing_key for r in conn.execute(sa.select(outbox.c.routing_key).order_by(outbox.c.id))]


def test_registered_directive_archives_each_attachment_with_retention_and_signature_report(
    engine, vault, verifier, samples, stage_file
):
    signed = stage_file(samples.valid, "1393-CVT-CL.pdf")
    plain = stage_file(samples.unsigned, "phụ lục.pdf")
    event = directive_event("dir-1", [signed.attachment, plain.attachment])

    created = handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)

    assert len(created) == 2
    with engine.connect() as conn:
        rows = {r.filename: r for r in conn.execute(sa.select(records))}
    assert set(rows) == {"1393-CVT-CL.pdf", "phụ lục.pdf"}
    row = rows["1393-CVT-CL.pdf"]
    assert row.key == f"records/dir-1/{signed.attachment['sha256']}"
    assert row.retention_class == "10"  # Công văn
    assert row.signature_status == "valid"
    assert rows["phụ lục.pdf"].signature_status == "unsigned"
    assert row.signature_report["signatures"][0]["signer"] == "Nguyễn Văn Thử"
    stored = vault.store.stat(ARCHIVE, row.key)
    assert stored.retention is not None and stored.retention.mode == "GOVERNANCE"
    assert stored.retention.retain_until.year - row.archived_at.year == 10
    assert vault.store.read(ARCHIVE, row.key) == samples.valid  # byte-exact, never rewritten
    with pytest.raises(ObjectLocked):
        vault.store.delete(ARCHIVE, row.key)
    assert _outbox_types(engine).count("archive.record_archived.v1") == 2


def test_redelivered_event_archives_nothing_twice(engine, vault, verifier, samples, stage_file):
    staged = stage_file(samples.valid, "a.pdf")
    event = directive_event("dir-2", [staged.attachment])

    first = handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)
    version = vault.store.stat(ARCHIVE, f"records/dir-2/{staged.attachment['sha256']}").version_id
    again = handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)

    assert len(first) == 1 and again == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 1
        actions = [r.action for r in conn.execute(sa.select(audit_entries.c.action))]
    assert actions.count("record_archived") == 1 and actions.count("directive_registered") == 1
    assert vault.store.stat(ARCHIVE, f"records/dir-2/{staged.attachment['sha256']}").version_id == version
    assert _outbox_types(engine).count("archive.record_archived.v1") == 1


@pytest.mark.parametrize(
    ("sample", "retention_class", "years", "basis"),
    [
        # Finding 9: any submitter could force permanent, held, undeletable archiving by naming a type.
        ("unsigned", "10", 10, "asks for class vinh_vien; signature unsigned, so class 10"),
        ("valid", "vinh_vien", 70, "document type 'Quyết định': class vinh_vien (signature valid)"),
    ],
)
def test_a_declared_permanent_type_gets_the_class_its_signature_proves_and_is_never_held(
    engine, vault, verifier, samples, stage_file, sample, retention_class, years, basis
):
    staged = stage_file(getattr(samples, sample), "qd.pdf")
    event = directive_event("dir-3", [staged.attachment], document_type="Quyết định")

    handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)

    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
        (archived,) = [json.loads(r.details) for r in conn.execute(
            sa.select(audit_entries.c.details).where(audit_entries.c.action == "record_archived")
        )]  # fmt: skip
    assert row.retention_class == retention_class and not row.legal_hold and row.legal_hold_reason is None
    stored = vault.store.stat(ARCHIVE, row.key)
    assert not stored.legal_hold
    assert stored.retention is not None and stored.retention.retain_until.year - row.archived_at.year == years
    assert row.retain_until.year - row.archived_at.year == years
    assert basis in archived["retention_basis"]


def test_invalid_signature_is_recorded_and_announced(engine, vault, verifier, samples, stage_file):
    staged = stage_file(samples.tampered, "sửa.pdf")

    handle_directive_registered(
        directive_event("dir-4", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
    )

    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
        body = conn.execute(
            sa.select(outbox.c.body).where(outbox.c.routing_key == "archive.signature_invalid.v1")
        ).scalar_one()
    assert row.signature_status == "invalid"
    envelope = json.loads(body)
    assert envelope["payload"]["record_id"] == row.id
    assert envelope["payload"]["signatures"][0]["intact"] is False


def test_task_events_build_history_and_archive_reports(engine, vault, verifier, samples, stage_file):
    handle_directive_registered(directive_event("dir-5", []), engine=engine, vault=vault, verifier=verifier)
    report = stage_file(samples.unsigned, "báo cáo kết quả.pdf").attachment
    assigned = task_event("task_assigned", "dir-5", task_id="t1", unit="PVHTT")
    done = task_event(
        "task_status_changed",
        "dir-5",
        task_id="t1",
        status="completed",
        report={k: report[k] for k in ("bucket", "key", "sha256", "size", "filename", "content_type")},
    )

    handle_task_event(assigned, engine=engine, vault=vault, verifier=verifier)
    created = handle_task_event(done, engine=engine, vault=vault, verifier=verifier)
    handle_task_event(done, engine=engine, vault=vault, verifier=verifier)  # redelivery

    with engine.connect() as conn:
        history = conn.execute(sa.select(task_events).order_by(task_events.c.id)).all()
        row = conn.execute(sa.select(records)).one()
    assert [(h.event_type, h.status) for h in history] == [
        ("routing.task_assigned", None),
        ("routing.task_status_changed", "completed"),
    ]
    assert created == [row.id] and row.source_kind == "report" and row.filename == "báo cáo kết quả.pdf"
    assert row.subject.startswith("V/v phối hợp")  # directive metadata carried onto the report record


class CountingStore:
    """The real filesystem store, counting the reads (`open`/`read`) per bucket."""

    def __init__(self, inner):
        self._inner = inner
        self.reads: list[str] = []

    def open(self, bucket, key):
        self.reads.append(bucket)
        return self._inner.open(bucket, key)

    def read(self, bucket, key):
        self.reads.append(bucket)
        return self._inner.read(bucket, key)

    def open_with_info(self, bucket, key):
        self.reads.append(bucket)
        return self._inner.open_with_info(bucket, key)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_each_file_is_read_once_and_validated_from_that_read(engine, vault, verifier, samples, stage_file):
    staged = stage_file(samples.valid, "một lần.pdf")
    counting = CountingStore(vault.store)
    one_read = dataclasses.replace(vault, store=counting)

    handle_directive_registered(
        directive_event("dir-once", [staged.attachment]), engine=engine, vault=one_read, verifier=verifier
    )

    assert counting.reads == [staged.attachment["bucket"]]  # staging once; the archived copy is not re-read
    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
    assert (
        row.signature_status == "valid"
        and row.signature_report["signatures"][0]["signer"] == "Nguyễn Văn Thử"
    )
    assert vault.store.read(ARCHIVE, row.key) == samples.valid


class PutRecordingStore(CountingStore):
    """CountingStore that also keeps what kind of body each put was given."""

    def __init__(self, inner):
        super().__init__(inner)
        self.put_bodies: list[object] = []

    def put(self, bucket, key, data, **kwargs):
        self.put_bodies.append(data)
        return self._inner.put(bucket, key, data, **kwargs)


@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "spooled-to-disk"])
def test_the_archive_put_takes_the_digest_of_the_verified_read(
    monkeypatch, engine, vault, verifier, samples, stage_file, in_memory
):
    from archive import archiving

    if not in_memory:
        monkeypatch.setattr(archiving, "ARCHIVE_SPOOL_IN_MEMORY", 1024)  # the sample is larger: to disk
    staged = stage_file(samples.valid, "đã xác minh.pdf")
    recording = PutRecordingStore(vault.store)

    handle_directive_registered(
        directive_event("dir-verified", [staged.attachment]),
        engine=engine,
        vault=dataclasses.replace(vault, store=recording),
        verifier=verifier,
    )

    (body,) = recording.put_bodies
    if in_memory:
        # The staged read hashed these bytes as they arrived: the put need not hash them a second time.
        assert isinstance(body, VerifiedBytes)
        assert body.data == samples.valid and body.sha256 == staged.attachment["sha256"]
    else:
        assert not isinstance(body, VerifiedBytes)  # a file on disk is hashed by the put, once
    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
    assert row.sha256 == staged.attachment["sha256"] and row.signature_status == "valid"
    assert vault.store.read(ARCHIVE, row.key) == samples.valid


class _SignalingVerifier:
    """The real verifier, telling when a check started; or failing, when told to."""

    def __init__(self, inner, *, fail: BaseException | None = None):
        self._inner = inner
        self.started = threading.Event()
        self.fail = fail

    def verify_stream(self, stream):
        self.started.set()
        if self.fail is not None:
            raise self.fail
        return self._inner.verify_stream(stream)


class _PutAfterTheCheckStarted(CountingStore):
    """A put that waits (up to 5 s) for the signature check to start, then fails or goes through."""

    def __init__(self, inner, started: threading.Event, *, fail: BaseException | None = None):
        super().__init__(inner)
        self.started = started
        self.fail = fail
        self.check_was_running = False

    def put(self, bucket, key, data, **kwargs):
        self.check_was_running = self.started.wait(5)
        if self.fail is not None:
            raise self.fail
        return self._inner.put(bucket, key, data, **kwargs)


def _checks_running() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "archive-signature-check"]


def test_the_signature_check_runs_while_the_put_sends_the_same_bytes(
    engine, vault, verifier, samples, stage_file
):
    staged = stage_file(samples.valid, "song song.pdf")
    signaling = _SignalingVerifier(verifier)
    store = _PutAfterTheCheckStarted(vault.store, signaling.started)

    handle_directive_registered(
        directive_event("dir-overlap", [staged.attachment]),
        engine=engine,
        vault=dataclasses.replace(vault, store=store),
        verifier=signaling,
    )

    assert store.check_was_running  # sequential code would have made the put wait the whole 5 s in vain
    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
    assert (
        row.signature_status == "valid"
        and row.signature_report["signatures"][0]["signer"] == "Nguyễn Văn Thử"
    )
    assert not _checks_running()


def test_a_failed_put_waits_for_the_check_and_stores_nothing(engine, vault, verifier, samples, stage_file):
    staged = stage_file(samples.valid, "lỗi.pdf")
    signaling = _SignalingVerifier(verifier)
    store = _PutAfterTheCheckStarted(vault.store, signaling.started, fail=ConnectionError("store went away"))

    with pytest.raises(ConnectionError, match="store went away"):
        handle_directive_registered(
            directive_event("dir-put-fails", [staged.attachment]),
            engine=engine,
            vault=dataclasses.replace(vault, store=store),
            verifier=signaling,
        )

    assert not _checks_running()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one() == 0  # retried later


def test_a_check_that_breaks_fails_the_handler_after_the_put(engine, vault, verifier, samples, stage_file):
    staged = stage_file(samples.valid, "hỏng.pdf")
    event = directive_event("dir-check-fails", [staged.attachment])
    broken = _SignalingVerifier(verifier, fail=MemoryError("no room to validate"))

    with pytest.raises(MemoryError, match="no room"):
        handle_directive_registered(event, engine=engine, vault=vault, verifier=broken)

    assert not _checks_running()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 0
    # The redelivery meets the locked copy the put left, and validates the same bytes.
    created = handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)
    assert len(created) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(records.c.signature_status)).scalar_one() == "valid"


def test_redelivery_validates_the_archived_copy_and_writes_nothing(
    engine, vault, verifier, samples, stage_file
):
    staged = stage_file(samples.valid, "lại.pdf")
    event = directive_event("dir-again", [staged.attachment])
    handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)
    with engine.connect() as conn:
        archived = conn.execute(sa.select(records)).one()
    with engine.begin() as conn:  # as if the worker died after the object was written, before its commit
        conn.execute(sa.delete(records))
        conn.execute(sa.text("DELETE FROM inbox"))
    counting = CountingStore(vault.store)

    created = handle_directive_registered(
        event, engine=engine, vault=dataclasses.replace(vault, store=counting), verifier=verifier
    )

    # The staged file is read, the locked first copy refuses the second upload, and the archived copy is
    # what gets checked and validated.
    assert len(created) == 1 and counting.reads == [STAGING, ARCHIVE]
    assert vault.store.stat(ARCHIVE, archived.key).version_id == archived.version_id
    with engine.connect() as conn:
        assert conn.execute(sa.select(records.c.signature_status)).scalar_one() == "valid"


def test_redelivery_after_staging_was_cleaned_up_validates_the_archived_copy(
    engine, vault, verifier, samples, stage_file
):
    staged = stage_file(samples.valid, "đã dọn.pdf")
    event = directive_event("dir-cleaned", [staged.attachment])
    handle_directive_registered(event, engine=engine, vault=vault, verifier=verifier)
    with engine.begin() as conn:  # the first delivery wrote the object, then died before its commit
        conn.execute(sa.delete(records))
        conn.execute(sa.text("DELETE FROM inbox"))
    vault.store.delete(STAGING, staged.attachment["key"])
    counting = CountingStore(vault.store)

    created = handle_directive_registered(
        event, engine=engine, vault=dataclasses.replace(vault, store=counting), verifier=verifier
    )

    assert len(created) == 1 and counting.reads == [STAGING, ARCHIVE]
    with engine.connect() as conn:
        assert conn.execute(sa.select(records.c.signature_status)).scalar_one() == "valid"


def test_a_staged_file_that_is_missing_and_never_archived_is_retried_not_dead_lettered(
    engine, vault, verifier, samples, stage_file
):
    staged = stage_file(samples.valid, "mất.pdf")
    vault.store.delete(STAGING, staged.attachment["key"])

    with pytest.raises(ObjectNotFound, match="never archived"):
        handle_directive_registered(
            directive_event("dir-missing", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
        )

    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 0


def test_an_archived_copy_that_differs_from_the_announced_bytes_is_refused(
    engine, vault, verifier, samples, stage_file
):
    staged = stage_file(samples.valid, "giả.pdf")
    sha = staged.attachment["sha256"]
    # Something else sits, locked, under the archive key of this file (it can only be a tampered copy).
    vault.store.put(
        ARCHIVE,
        f"records/dir-forged/{sha}",
        samples.unsigned,
        size=len(samples.unsigned),
        content_type="application/pdf",
        sha256=hashlib.sha256(samples.unsigned).hexdigest(),
        legal_hold=True,
    )

    with pytest.raises(PermanentError, match="archived copy does not match"):
        handle_directive_registered(
            directive_event("dir-forged", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
        )


def test_staged_bytes_that_do_not_match_the_announced_checksum_are_refused(
    engine, vault, verifier, samples, stage_file
):
    staged = stage_file(samples.valid, "sai.pdf")
    attachment = {**staged.attachment, "sha256": hashlib.sha256(b"other bytes").hexdigest()}

    with pytest.raises(PermanentError, match="sha256"):
        handle_directive_registered(
            directive_event("dir-bad", [attachment]), engine=engine, vault=vault, verifier=verifier
        )

    assert not vault.store.exists(ARCHIVE, f"records/dir-bad/{attachment['sha256']}")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 0


def _tasks_assigned(directive_id: str, tasks: list[dict]) -> Envelope:
    return Envelope.new(
        "routing.tasks_assigned", {"directive_id": directive_id, "tasks": tasks}, producer="routing"
    )


def _task_document(directive_id: str, unit: str, title: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "directive_id": directive_id,
        "unit": unit,
        "role": "phoi_hop",
        "title": title,
        "status": "assigned",
        "subject": "V/v tuyên truyền ứng dụng i-Speed",
    }


def test_tasks_assigned_keeps_one_history_row_and_audit_entry_per_task_once(engine):
    tasks = [
        _task_document("dir-9", "PVHTT", "Phối hợp tuyên truyền"),
        _task_document("dir-9", "UBND_DONG_XOAI", "Chủ trì thực hiện"),
        _task_document("dir-9", "STTTT", "Để biết"),
    ]
    event = _tasks_assigned("dir-9", tasks)

    assert handle_tasks_assigned(event, engine=engine) == 3
    assert handle_tasks_assigned(event, engine=engine) == 0  # redelivery

    with engine.connect() as conn:
        history = conn.execute(sa.select(task_events).order_by(task_events.c.id)).all()
        audit = conn.execute(sa.select(audit_entries).order_by(audit_entries.c.seq)).all()
    assert [h.event_id for h in history] == [f"{event.id}#{n}" for n in range(3)]
    assert {h.event_type for h in history} == {"routing.task_assigned"}
    assert [(h.task_id, h.unit, h.status) for h in history] == [
        (t["id"], t["unit"], "assigned") for t in tasks
    ]
    assert [h.payload for h in history] == tasks  # the documents as routing sent them, Vietnamese intact
    assert [(a.action, a.actor, a.source_event_id) for a in audit] == [
        ("task_assigned", "service:routing", event.id)
    ] * 3
    assert [json.loads(a.details)["task_id"] for a in audit] == [t["id"] for t in tasks]
    assert audit_log.verify(engine).ok


@pytest.mark.parametrize(
    "payload",
    [
        {"directive_id": "dir-9"},
        {"directive_id": "dir-9", "tasks": []},
        {"directive_id": "dir-9", "tasks": [{"unit": "PVHTT"}]},
        {"tasks": [{"id": "t-1", "directive_id": "dir-9"}]},
        # a task of another directive: the event is not what it says it is
        {
            "directive_id": "dir-9",
            "tasks": [{"id": "t-1", "directive_id": "dir-9"}, {"id": "t-2", "directive_id": "x"}],
        },
    ],
)
def test_malformed_tasks_assigned_is_dead_lettered_and_stores_nothing(engine, payload):
    event = Envelope.new("routing.tasks_assigned", payload, producer="routing")
    with pytest.raises(PermanentError):
        handle_tasks_assigned(event, engine=engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(task_events)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_entries)).scalar_one() == 0


def _status_change(directive_id: str, task_id: str, frm: str, to: str) -> dict:
    return {
        "task_id": task_id,
        "directive_id": directive_id,
        "unit": "PVHTT",
        "role": "de_biet",
        "from_status": frm,
        "status": to,
        "note": "để biết" if to == "completed" else None,
        "actor": "t-unit-PVHTT",
        "changed_at": "2026-11-30T08:00:00+00:00",
        "task": {"id": task_id, "title": "Để biết"},
    }


def test_tasks_acknowledged_keeps_each_status_change_once(engine):
    changes = [
        _status_change("dir-a", "t-1", "assigned", "received"),
        _status_change("dir-a", "t-1", "received", "completed"),
        _status_change("dir-b", "t-2", "assigned", "received"),
    ]
    event = Envelope.new("routing.tasks_acknowledged", {"changes": changes}, producer="routing")

    assert handle_tasks_acknowledged(event, engine=engine) == 3
    assert handle_tasks_acknowledged(event, engine=engine) == 0  # redelivery

    with engine.connect() as conn:
        history = conn.execute(sa.select(task_events).order_by(task_events.c.id)).all()
        audit = conn.execute(sa.select(audit_entries).order_by(audit_entries.c.seq)).all()
    assert [(h.event_id, h.event_type, h.directive_id, h.task_id, h.status) for h in history] == [
        (f"{event.id}#0", "routing.task_status_changed", "dir-a", "t-1", "received"),
        (f"{event.id}#1", "routing.task_status_changed", "dir-a", "t-1", "completed"),
        (f"{event.id}#2", "routing.task_status_changed", "dir-b", "t-2", "received"),
    ]
    assert [h.payload for h in history] == changes  # each change as routing sent it, Vietnamese intact
    assert [(a.action, a.directive_id, json.loads(a.details)["status"]) for a in audit] == [
        ("task_status_changed", "dir-a", "received"),
        ("task_status_changed", "dir-a", "completed"),
        ("task_status_changed", "dir-b", "received"),
    ]
    assert audit_log.verify(engine).ok


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"changes": []},
        {"changes": [{"directive_id": "dir-a", "status": "received"}]},
        {"changes": [{"task_id": "t-1", "status": "received"}]},
        {"changes": [{"task_id": "t-1", "directive_id": "dir-a"}]},
    ],
)
def test_malformed_tasks_acknowledged_is_dead_lettered_and_stores_nothing(engine, payload):
    event = Envelope.new("routing.tasks_acknowledged", payload, producer="routing")
    with pytest.raises(PermanentError):
        handle_tasks_acknowledged(event, engine=engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(task_events)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_entries)).scalar_one() == 0


def test_a_revocation_is_kept_in_the_history_and_audit_and_its_packet_archived(
    engine, vault, verifier, samples, stage_file
):
    attachment = stage_file(samples.valid, "cv1393.pdf").attachment
    handle_directive_registered(
        directive_event("dir-9", [attachment]), engine=engine, vault=vault, verifier=verifier
    )
    packet_bytes = "<edXML>thu hồi</edXML>".encode()
    packet = stage_file(packet_bytes, "thu-hoi-edxml.xml").attachment
    packet["content_type"] = "application/xml"
    revoked = Envelope.new(
        "intake.directive_revoked",
        {
            "directive_id": "dir-9",
            "arrival_number": 9,
            "number": "1393/CVT-CL",
            "reason": "Cục Viễn thông thu hồi để sửa đổi",
            "revoked_at": "2021-04-20T09:00:00+07:00",
            "revoked_by": "edxml:000.00.00.G22",
            "packet": {k: packet[k] for k in ("bucket", "key", "sha256", "size", "filename", "content_type")},
        },
        producer="intake",
    )
    created = handle_directive_revoked(revoked, engine=engine, vault=vault, verifier=verifier)
    assert (
        handle_directive_revoked(revoked, engine=engine, vault=vault, verifier=verifier) == []
    )  # redelivery

    with engine.connect() as conn:
        history = conn.execute(sa.select(task_events).where(task_events.c.directive_id == "dir-9")).all()
        kept = conn.execute(
            sa.select(records).where(records.c.directive_id == "dir-9").order_by(records.c.id)
        ).all()
        audit = conn.execute(
            sa.select(audit_entries).where(audit_entries.c.action == "directive_revoked")
        ).all()
    assert [(h.event_type, h.status) for h in history] == [("intake.directive_revoked", "revoked")]
    # Every record stays; the revoking packet joins them, archived like any file.
    assert sorted(r.source_kind for r in kept) == ["attachment", "revocation"]
    (packet_record,) = [r for r in kept if r.source_kind == "revocation"]
    assert created == [packet_record.id] and packet_record.sha256 == packet["sha256"]
    assert vault.store.read(ARCHIVE, packet_record.key) == packet_bytes
    (entry,) = audit
    details = json.loads(entry.details) if isinstance(entry.details, str) else entry.details
    assert details["reason"] == "Cục Viễn thông thu hồi để sửa đổi"


def _file(staged: dict, content_type: str) -> dict:
    return {
        **{k: staged[k] for k in ("bucket", "key", "sha256", "size", "filename")},
        "content_type": content_type,
    }


def test_an_update_is_kept_as_a_revision_with_its_added_files_and_packet_archived(
    engine, vault, verifier, samples, stage_file
):
    attachment = stage_file(samples.valid, "cv1393.pdf").attachment
    handle_directive_registered(
        directive_event("dir-10", [attachment]), engine=engine, vault=vault, verifier=verifier
    )
    added = stage_file(samples.valid + b"\n% phu luc", "Phụ lục bổ sung.pdf").attachment
    packet_bytes = "<edXML>cập nhật</edXML>".encode()
    packet = stage_file(packet_bytes, "cap-nhat-edxml.xml").attachment
    changes = {"due_date": {"from": "2021-04-30", "to": "2021-05-20"}}
    updated = Envelope.new(
        "intake.directive_updated",
        {
            "directive_id": "dir-10",
            "arrival_number": 10,
            "number": "1393/CVT-CL",
            "revision": 2,
            "changes": changes,
            "metadata": {},
            "attachments_added": [{**_file(added, "application/pdf"), "id": "att-2"}],
            "reason": "Gia hạn",
            "updated_at": "2021-04-20T09:00:00+07:00",
            "updated_by": "edxml:000.00.00.G23",
            "packet": _file(packet, "application/xml"),
        },
        producer="intake",
    )
    created = handle_directive_updated(updated, engine=engine, vault=vault, verifier=verifier)
    assert (
        handle_directive_updated(updated, engine=engine, vault=vault, verifier=verifier) == []
    )  # redelivery
    with engine.connect() as conn:
        history = conn.execute(sa.select(task_events).where(task_events.c.directive_id == "dir-10")).all()
        kept = conn.execute(sa.select(records).where(records.c.directive_id == "dir-10")).all()
        (entry,) = conn.execute(
            sa.select(audit_entries).where(audit_entries.c.action == "directive_updated")
        ).all()
    assert [(h.event_type, h.status) for h in history] == [("intake.directive_updated", "revision 2")]
    assert sorted(r.source_kind for r in kept) == ["attachment", "attachment", "update"]
    assert len(created) == 2
    (packet_record,) = [r for r in kept if r.source_kind == "update"]
    assert vault.store.read(ARCHIVE, packet_record.key) == packet_bytes
    assert any(r.filename == "Phụ lục bổ sung.pdf" for r in kept)
    details = json.loads(entry.details) if isinstance(entry.details, str) else entry.details
    assert details["revision"] == 2 and details["changes"] == changes and details["reason"] == "Gia hạn"
    assert audit_log.verify(engine).ok


def test_a_replacement_is_kept_in_the_history_naming_the_new_directive(
    engine, vault, verifier, samples, stage_file
):
    attachment = stage_file(samples.valid, "cv1393.pdf").attachment
    handle_directive_registered(
        directive_event("dir-11", [attachment]), engine=engine, vault=vault, verifier=verifier
    )
    replaced = Envelope.new(
        "intake.directive_replaced",
        {
            "directive_id": "dir-11",
            "arrival_number": 11,
            "number": "1393/CVT-CL",
            "replacement": {"directive_id": "dir-12", "arrival_number": 12, "number": "1450/CVT-CL"},
            "reason": "Ban hành lại",
            "replaced_at": "2021-04-21T09:00:00+07:00",
            "replaced_by": "van-thu",
        },
        producer="intake",
    )
    assert handle_directive_replaced(replaced, engine=engine, vault=vault, verifier=verifier) == []
    handle_directive_replaced(replaced, engine=engine, vault=vault, verifier=verifier)  # redelivery
    with engine.connect() as conn:
        history = conn.execute(sa.select(task_events).where(task_events.c.directive_id == "dir-11")).all()
        (entry,) = conn.execute(
            sa.select(audit_entries).where(audit_entries.c.action == "directive_replaced")
        ).all()
    assert [(h.event_type, h.status) for h in history] == [("intake.directive_replaced", "replaced")]
    details = json.loads(entry.details) if isinstance(entry.details, str) else entry.details
    assert details["replacement"]["directive_id"] == "dir-12" and details["reason"] == "Ban hành lại"


@pytest.mark.parametrize("handler", [handle_directive_updated, handle_directive_replaced])
def test_malformed_lifecycle_events_are_dead_lettered(engine, vault, verifier, handler):
    with pytest.raises(PermanentError, match=r"malformed intake\.directive_x"):
        handler(
            Envelope.new("intake.directive_x", {"directive_id": "d"}, producer="intake"),
            engine=engine,
            vault=vault,
            verifier=verifier,
        )
