"""The archive worker refuses to start on a store that cannot keep its guarantees, and says why in one line:
Ceph RGW without a key lock (the archive has one only on PostgreSQL), where RGW would stack a second version
on a locked record."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration


def test_the_worker_refuses_an_rgw_store_it_cannot_serialise_writes_on(rgw, tmp_path, trust_bundle):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")}
    env.update(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path / "var"),
            "DOCROUTE_JWT_SECRET": "archive-test-secret-0123456789abcdef",
            # SQLite: no advisory locks, so no key lock to stand in for RGW's missing conditional PUT.
            "DOCROUTE_ARCHIVE_DATABASE_URL": f"sqlite:///{tmp_path / 'archive.db'}",
            "DOCROUTE_TRUST_STORE": str(trust_bundle),
            # Never reached: the store is checked before anything is consumed.
            "DOCROUTE_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",
            "DOCROUTE_S3_ENDPOINT": rgw.endpoint,
            "DOCROUTE_S3_ACCESS_KEY": rgw.access_key,
            "DOCROUTE_S3_SECRET_KEY": rgw.secret_key,
            "DOCROUTE_S3_SECURE": "false",
            "DOCROUTE_S3_REGION": rgw.region,
            "DOCROUTE_ARCHIVE_BUCKET": f"docroute-archive-{uuid.uuid4().hex[:8]}",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "archive.worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "archive worker: refusing to start: object store ignores If-None-Match: * on versioned buckets "
        "and no key lock is configured (a locked record could get a second version)"
    )
