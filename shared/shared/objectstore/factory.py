"""Choose the object store from settings: S3 when an endpoint is configured, else the local filesystem."""

from __future__ import annotations

from shared.objectstore.filesystem import FilesystemStore
from shared.objectstore.port import ObjectStore
from shared.objectstore.s3 import S3Store
from shared.settings import CommonSettings


def make_store(settings: CommonSettings) -> ObjectStore:
    """S3Store when DOCROUTE_S3_ENDPOINT is set, else FilesystemStore under `<data_dir>/objects`."""
    config = settings.object_store
    if config.endpoint:
        return S3Store(
            config.endpoint,
            config.access_key,
            config.secret_key,
            secure=config.secure,
            region=config.region,
            probe_bucket=config.staging_bucket,
        )
    return FilesystemStore(settings.data_dir / "objects")
