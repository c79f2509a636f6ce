"""Fixtures of the archive tests: signed sample PDFs (made once), a migrated database, a vault, a stager, and
for the integration tests a migrated PostgreSQL database and fresh buckets on each S3 server (moto, RGW)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from archive.adapters.db import migrate
from archive.common import Vault
from archive.signatures import SignatureVerifier
from archive_pdfs import SignedSamples, build_samples
from archive_testkit import ARCHIVE, STAGING, Staged, make_vault, stage
from minio import Minio
from shared.db import make_engine
from shared.objectstore import AdvisoryKeyLock, FilesystemStore, ObjectStore, S3Store


@pytest.fixture(scope="session")
def samples() -> SignedSamples:
    """A trusted CA, a stranger CA, and valid / tampered / untrusted / unsigned PDFs, built once."""
    return build_samples()


@pytest.fixture(scope="session")
def trust_bundle(samples: SignedSamples, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "trust.pem"
    path.write_bytes(samples.trusted_pki.ca_pem)
    return path


@pytest.fixture(scope="session")
def verifier(trust_bundle: Path) -> SignatureVerifier:
    return SignatureVerifier.from_bundle(trust_bundle)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Any]:
    eng = make_engine(sqlite_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Any]:
    """A migrated archive database on PostgreSQL (the only one with the advisory key lock RGW needs)."""
    eng = make_engine(pg_url)
    migrate(eng)
    yield eng
    eng.dispose()


class ArchiveS3(NamedTuple):
    """The archive's store on one S3 server, fresh staging and object-lock buckets on it, and a raw client."""

    store: S3Store
    staging: str
    archive: str
    raw: Minio
    server: Any  # tests/conftest.py's S3Server


@pytest.fixture
def archive_s3(s3_server: Any, pg_engine: Any) -> ArchiveS3:
    """On moto and on Ceph RGW in turn: an S3Store with the archive's PostgreSQL key lock (as build_deps
    gives it), a new staging bucket and a new object-lock archive bucket, and a bare minio client with the
    same keys (the intruder)."""
    store = s3_server.store(key_lock=AdvisoryKeyLock(pg_engine))
    suffix = uuid.uuid4().hex[:8]
    staging, archive = f"stg-{suffix}", f"arc-{suffix}"
    store.ensure_bucket(staging)
    store.ensure_bucket(archive, object_lock=True)
    return ArchiveS3(store, staging, archive, s3_server.raw(), s3_server)


@pytest.fixture
def fs_store(tmp_path: Path) -> ObjectStore:
    store = FilesystemStore(tmp_path / "objects")
    store.ensure_bucket(STAGING)
    store.ensure_bucket(ARCHIVE, object_lock=True)
    return store


@pytest.fixture
def vault(fs_store: ObjectStore) -> Vault:
    return make_vault(fs_store)


@pytest.fixture
def stage_file(fs_store: ObjectStore) -> Callable[[bytes, str], Staged]:
    return lambda data, filename: stage(fs_store, data, filename)


@pytest.fixture
def app_settings(tmp_path: Path, trust_bundle: Path, sqlite_url: str) -> Any:
    from archive.settings import Settings

    return Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path / "var"),
            "DOCROUTE_JWT_SECRET": "archive-test-secret-0123456789abcdef",
            "DOCROUTE_ARCHIVE_DATABASE_URL": sqlite_url,
            "DOCROUTE_TRUST_STORE": str(trust_bundle),
        }
    )


@pytest.fixture
def client(app_settings: Any, engine: Any, vault: Vault, verifier: SignatureVerifier) -> Any:
    from archive.api import create_app
    from archive.deps import ArchiveDeps

    app = create_app(app_settings, ArchiveDeps(engine=engine, vault=vault, verifier=verifier))
    return app.test_client()


@pytest.fixture
def auth(app_settings: Any) -> Callable[..., dict[str, str]]:
    from shared.auth import issue_token

    def headers(role: str = "auditor", sub: str | None = None) -> dict[str, str]:
        token = issue_token(app_settings.common.auth.secret, sub=sub or f"{role}-1", roles=[role])
        return {"Authorization": f"Bearer {token}"}

    return headers
