"""The staging sweep on the filesystem store: old orphans go; young, referenced and foreign objects stay."""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from intake.adapters.references import SqlStagingReferences
from intake.adapters.staging import directive_of, staging_key
from intake.settings import Settings
from intake.staging_sweep import StagingReferences, sweep_staging_orphans
from intake.worker import IntakeWorker
from intake_testing import build_intake_app, intake_environ, minimal_pdf, sample
from prometheus_client import REGISTRY
from shared.objectstore.filesystem import FilesystemStore
from shared.objectstore.port import ObjectStore, ObjectStoreError

BUCKET = "docroute-staging"
HOUR = timedelta(hours=1)


class FakeReferences:
    """StagingReferences over two sets: the keys attachment rows name, the directive ids that exist."""

    def __init__(self, keys: Iterable[str] = (), directives: Iterable[str] = ()) -> None:
        self.keys = set(keys)
        self.directives = set(directives)
        self.asked: list[list[str]] = []

    def referenced(self, bucket: str, keys: Sequence[str]) -> set[str]:
        self.asked.append(list(keys))
        return {key for key in keys if key in self.keys or directive_of(key) in self.directives}


def put(store: ObjectStore, key: str, data: bytes = b"%PDF-1.4 staged") -> str:
    store.put(
        BUCKET,
        key,
        data,
        size=len(data),
        content_type="application/pdf",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return key


def staged(store: ObjectStore) -> set[str]:
    return {item.key for item in store.list_objects(BUCKET)}


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    fs = FilesystemStore(tmp_path / "objects")
    fs.ensure_bucket(BUCKET)
    return fs


def test_only_old_unreferenced_uploads_of_intake_are_removed(store: FilesystemStore) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    orphan = put(store, staging_key(str(uuid.uuid4()), digest), b"orphan bytes")
    registered_id = str(uuid.uuid4())
    referenced = put(store, staging_key(registered_id, digest))
    # Same directive folder, no attachment row naming it: kept, the directive exists.
    beside = put(store, staging_key(registered_id, hashlib.sha256(b"y").hexdigest()))
    report = put(store, f"tasks/{uuid.uuid4()}/{digest}")  # routing's report files share the bucket
    odd = put(store, "directives/notes.txt")  # not a key intake makes
    references = FakeReferences({referenced}, {registered_id})
    newest = max(item.last_modified for item in store.list_objects(BUCKET))

    young = sweep_staging_orphans(
        store=store, bucket=BUCKET, references=references, older_than=HOUR, now=newest + timedelta(minutes=59)
    )
    assert young.removed == () and young.young == 4
    assert staged(store) == {orphan, referenced, beside, report, odd}

    result = sweep_staging_orphans(
        store=store, bucket=BUCKET, references=references, older_than=HOUR, now=newest + timedelta(hours=2)
    )
    assert result.removed == (orphan,)
    assert result.removed_bytes == len(b"orphan bytes")
    assert result.referenced == 2 and result.listed == 4
    assert staged(store) == {referenced, beside, report, odd}
    assert all(not key.startswith("tasks/") for asked in references.asked for key in asked)


def test_a_missing_bucket_is_nothing_to_sweep(tmp_path: Path) -> None:
    result = sweep_staging_orphans(
        store=FilesystemStore(tmp_path),
        bucket="never-created",
        references=FakeReferences(),
        older_than=HOUR,
        now=datetime.now(UTC),
    )
    assert result.removed == () and result.listed == 0


def test_a_delete_that_fails_is_reported_and_the_rest_still_go(store: FilesystemStore) -> None:
    first = put(store, staging_key(str(uuid.uuid4()), hashlib.sha256(b"1").hexdigest()))
    second = put(store, staging_key(str(uuid.uuid4()), hashlib.sha256(b"2").hexdigest()))

    class Refusing:
        def __init__(self, inner: FilesystemStore) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def delete(self, bucket: str, key: str) -> None:
            if key == first:
                raise ObjectStoreError("refused")
            self.inner.delete(bucket, key)

    newest = max(item.last_modified for item in store.list_objects(BUCKET))
    result = sweep_staging_orphans(
        store=Refusing(store),  # type: ignore[arg-type]
        bucket=BUCKET,
        references=FakeReferences(),
        older_than=HOUR,
        now=newest + 2 * HOUR,
    )
    assert result.failed == (first,) and result.removed == (second,)
    assert staged(store) == {first}


@pytest.fixture(params=["fake", "sql"])
def registered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StagingReferences, str, str]:
    """A StagingReferences knowing one registered directive with one file: (references, its id, its key)."""
    app = build_intake_app(intake_environ(tmp_path))
    body = {
        **sample("1393-CVT-CL"),
        "attachments": [
            {
                "filename": "Công văn.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(minimal_pdf("sweep")).decode(),
            }
        ],
    }
    created = app.post_json(body)
    assert created.status_code == 201, created.get_json()
    directive_id = created.get_json()["id"]
    [key] = app.staged_objects()
    if request.param == "sql":
        return SqlStagingReferences(app.deps.engine), directive_id, key
    return FakeReferences({key}, {directive_id}), directive_id, key


def test_references_contract(registered: tuple[StagingReferences, str, str]) -> None:
    references, directive_id, key = registered
    beside = staging_key(directive_id, hashlib.sha256(b"other").hexdigest())
    orphan = staging_key(str(uuid.uuid4()), hashlib.sha256(b"other").hexdigest())
    assert references.referenced(BUCKET, [key, beside, orphan]) == {key, beside}
    assert references.referenced("another-bucket", [orphan]) == set()
    assert references.referenced(BUCKET, []) == set()


def test_the_worker_round_counts_and_logs_what_it_removed(
    tmp_path: Path, store: FilesystemStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(intake_environ(tmp_path, DOCROUTE_STAGING_ORPHAN_SECONDS="600"))
    app = build_intake_app(intake_environ(tmp_path))  # migrates the SQLite database the worker reads
    orphan = put(store, staging_key(str(uuid.uuid4()), hashlib.sha256(b"o").hexdigest()), b"12345")
    newest = max(item.last_modified for item in store.list_objects(BUCKET))
    worker = IntakeWorker(
        settings, engine=app.deps.engine, store=store, clock=lambda: newest + timedelta(seconds=601)
    )
    before = REGISTRY.get_sample_value("docroute_intake_staging_orphans_removed_total") or 0.0
    before_bytes = REGISTRY.get_sample_value("docroute_intake_staging_orphan_bytes_removed_total") or 0.0
    with caplog.at_level(logging.INFO, logger="intake.worker"):
        result = worker.sweep_round()
    assert result.removed == (orphan,)
    assert REGISTRY.get_sample_value("docroute_intake_staging_orphans_removed_total") == before + 1
    assert REGISTRY.get_sample_value("docroute_intake_staging_orphan_bytes_removed_total") == before_bytes + 5
    [line] = [r for r in caplog.records if "staging sweep removed" in r.getMessage()]
    assert line.getMessage() == "staging sweep removed 1 orphan upload(s), 5 bytes, older than 600 s"
    assert line.removed_keys == [orphan]  # type: ignore[attr-defined]


def test_the_orphan_age_setting() -> None:
    from shared.settings import SettingsError

    assert Settings.from_env({}).staging_orphan_seconds == 3600
    assert Settings.from_env({}).staging_sweep_interval == 900
    assert Settings.from_env({"DOCROUTE_STAGING_ORPHAN_SECONDS": "300"}).staging_sweep_interval == 75
    with pytest.raises(SettingsError, match="DOCROUTE_STAGING_ORPHAN_SECONDS"):
        Settings.from_env({"DOCROUTE_STAGING_ORPHAN_SECONDS": "60"})
