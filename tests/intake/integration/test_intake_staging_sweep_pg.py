"""Staging sweep on PostgreSQL + S3 server: an old orphan goes; a young one and a registered file stay."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from intake.adapters.staging import staging_key
from intake.worker import IntakeWorker
from intake_testing import IntakeApp, minimal_pdf, sample
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


def test_the_sweep_removes_only_the_old_orphan(pg_intake: IntakeApp) -> None:
    store = pg_intake.deps.staging.store
    bucket = pg_intake.deps.staging.bucket
    body = {
        **sample("120-KH-BCD"),
        "attachments": [
            {
                "filename": "Kế hoạch.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(minimal_pdf("registered")).decode(),
            }
        ],
    }
    created = pg_intake.post_json(body)
    assert created.status_code == 201, created.get_json()
    [registered] = pg_intake.staged_objects()

    def stage(data: bytes) -> str:
        # What a web worker killed between staging and committing leaves behind.
        key = staging_key(str(uuid.uuid4()), hashlib.sha256(data).hexdigest())
        store.put(
            bucket,
            key,
            data,
            size=len(data),
            content_type="application/pdf",
            sha256=hashlib.sha256(data).hexdigest(),
        )
        return key

    old_orphan = stage(b"%PDF-1.4 killed mid-upload, long ago")
    listed = {item.key: item.last_modified for item in store.list_objects(bucket)}
    # S3 dates have one-second resolution: the young orphan must be visibly younger than the old one.
    deadline = time.monotonic() + 10
    while datetime.now(UTC) < listed[old_orphan] + timedelta(seconds=1.2):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    young_orphan = stage(b"%PDF-1.4 a registration still in flight")
    listed = {item.key: item.last_modified for item in store.list_objects(bucket)}
    assert listed[old_orphan] < listed[young_orphan] and listed[registered] <= listed[old_orphan]

    # The age limit falls between the two orphans: the registered file and the old orphan are past it.
    age = pg_intake.deps.settings.staging_orphan_seconds
    cutoff = listed[old_orphan] + (listed[young_orphan] - listed[old_orphan]) / 2
    worker = IntakeWorker(
        pg_intake.deps.settings,
        engine=pg_intake.deps.engine,
        store=store,
        clock=lambda: cutoff + timedelta(seconds=age),
    )
    before = REGISTRY.get_sample_value("docroute_intake_staging_orphans_removed_total") or 0.0
    result = worker.sweep_round()

    assert result.removed == (old_orphan,)
    assert pg_intake.staged_objects() == sorted([registered, young_orphan])
    assert REGISTRY.get_sample_value("docroute_intake_staging_orphans_removed_total") == before + 1
    # The registered attachment is still served.
    directive = created.get_json()
    attachment = directive["attachments"][0]
    download = pg_intake.client.get(
        f"/v1/directives/{directive['id']}/attachments/{attachment['id']}", headers=pg_intake.auth("clerk")
    )
    assert download.status_code == 200 and download.data == minimal_pdf("registered")
    # A second round finds nothing more to do.
    assert worker.sweep_round().removed == ()
