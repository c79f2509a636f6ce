"""Builds the archive's runtime dependencies (engine, vault, verifier) from settings, once per process."""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import make_engine
from shared.objectstore import AdvisoryKeyLock, make_store
from sqlalchemy.engine import Engine

from archive.adapters.retention_config import load_policy
from archive.common import Vault
from archive.settings import Settings
from archive.signatures import SignatureVerifier


@dataclass(frozen=True)
class ArchiveDeps:
    """What the API and the worker hand to the handlers."""

    engine: Engine
    vault: Vault
    verifier: SignatureVerifier


def build_deps(settings: Settings) -> ArchiveDeps:
    engine = make_engine(settings.database_url)
    # The archive's own serialisation point for stores that stack versions despite If-None-Match (RGW):
    # every archive process shares the PostgreSQL database, so its advisory locks order their writes.
    key_lock = AdvisoryKeyLock(engine) if engine.dialect.name == "postgresql" else None
    store = make_store(settings.common, key_lock=key_lock)
    vault = Vault(
        store=store,
        archive_bucket=settings.archive_bucket,
        lock_mode=settings.lock_mode,
        retention=load_policy(settings.retention_classes),
        max_file_bytes=settings.max_file_bytes,
    )
    return ArchiveDeps(
        engine=engine,
        vault=vault,
        verifier=SignatureVerifier.from_bundle(settings.trust_store),
    )
