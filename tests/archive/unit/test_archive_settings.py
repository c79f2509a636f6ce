"""Archive settings: lock mode defaults per environment, one-line errors naming the variable."""

from __future__ import annotations

import pytest
from archive.settings import PACKAGED_RETENTION, Settings
from shared.settings import SettingsError

BASE = {"DOCROUTE_JWT_SECRET": "s" * 40}


def test_development_defaults(tmp_path):
    settings = Settings.from_env({**BASE, "DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.lock_mode == "GOVERNANCE"
    assert settings.database_url == f"sqlite:///{tmp_path / 'archive.db'}"
    assert settings.retention_classes == PACKAGED_RETENTION
    assert settings.trust_store is None
    assert (settings.fixity_period_seconds, settings.audit_checkpoint_seconds) == (86400, 5)
    assert settings.consumers == 1


# Production refuses the embedded defaults (memory://, filesystem store, SQLite) and a predictable secret.
PRODUCTION = {
    "DOCROUTE_ENV": "production",
    "DOCROUTE_JWT_SECRET": "9b1f4e7a2c5d8f0b3e6a9c2d5f8b1e4a7c0d3f6b9e2a5c8d1f4b7e0a3c6d9f2b",
    "DOCROUTE_AMQP_URL": "amqps://svc-archive:pw@mq.example:5671/docroute",
    "DOCROUTE_S3_ENDPOINT": "minio.example:9000",
    "DOCROUTE_S3_ACCESS_KEY": "archive",
    "DOCROUTE_S3_SECRET_KEY": "archive-secret",
    "DOCROUTE_ARCHIVE_DATABASE_URL": "postgresql://archive@pg/archive",
}


def test_production_defaults_to_compliance(tmp_path):
    settings = Settings.from_env({**PRODUCTION, "DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.lock_mode == "COMPLIANCE"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCROUTE_LOCK_MODE", "FOREVER"),
        ("DOCROUTE_TRUST_STORE", "/nonexistent/trust.pem"),
        ("DOCROUTE_RETENTION_CLASSES", "/nonexistent/retention.yaml"),
        ("DOCROUTE_FIXITY_PERIOD_SECONDS", "0"),
        ("DOCROUTE_ARCHIVE_CONSUMERS", "0"),
        ("DOCROUTE_ARCHIVE_CONSUMERS", "9"),
        # Finding 2: an hour between checkpoints left an hour of entries open to rewriting.
        ("DOCROUTE_AUDIT_CHECKPOINT_SECONDS", "3600"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**BASE, "DOCROUTE_DATA_DIR": str(tmp_path), name: value})
    assert str(err.value).startswith(f"{name}:") and "\n" not in str(err.value)


def test_consumers_build_that_many_consuming_parts_each_with_its_own_connection(tmp_path):
    from archive.worker import ConsumerWorker, build_worker

    settings = Settings.from_env(
        {**BASE, "DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_ARCHIVE_CONSUMERS": "3"}
    )
    worker = build_worker(settings)
    try:
        consumers = [part.consumer for part in worker.parts if isinstance(part, ConsumerWorker)]
        assert len(consumers) == 3 and len({id(c.connection) for c in consumers}) == 3
        assert {c.prefetch_count for c in consumers} == {1}  # a burst spreads over all of them
    finally:
        worker.close()


def test_the_worker_checkpoints_the_audit_head_every_few_seconds(tmp_path):
    """Finding 2: the window in which entries can be rewritten unnoticed is one checkpoint round."""
    from archive.worker import build_worker
    from shared.runtime import Periodic

    worker = build_worker(Settings.from_env({**BASE, "DOCROUTE_DATA_DIR": str(tmp_path)}))
    try:
        rounds = {p.name: p.interval for p in worker.parts if isinstance(p, Periodic)}
        assert rounds["audit checkpoint"] <= 5
    finally:
        worker.close()
