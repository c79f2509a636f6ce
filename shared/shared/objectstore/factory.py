"""Choose the object store from settings: S3 when an endpoint is configured, else the local filesystem."""

from __future__ import annotations

from shared.objectstore.filesystem import FilesystemStore
from shared.objectstore.keylock import KeyLock
from shared.objectstore.port import ObjectStore
from shared.objectstore.s3 import S3Store
from shared.settings import CommonSettings


def make_store(settings: CommonSettings, *, key_lock: KeyLock | None = None) -> ObjectStore:
    """S3Store when DOCROUTE_S3_ENDPOINT is set, else FilesystemStore under `<data_dir>/objects`.

    `key_lock`: the serialisation point an S3 store uses when its server ignores conditional PUTs on
    versioned buckets (Ceph RGW); without one, such a store refuses object-lock buckets."""
    config = settings.object_store
    if config.endpoint:
        return S3Store(
            config.endpoint,
            config.access_key,
            config.secret_key,
            secure=config.secure,
            region=config.region,
            probe_bucket=config.staging_bucket,
            key_lock=key_lock,
        )
    return FilesystemStore(settings.data_dir / "objects")
