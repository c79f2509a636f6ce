"""The object-store port and its adapters (filesystem and S3/MinIO), re-exported for callers."""

from shared.objectstore.factory import make_store
from shared.objectstore.filesystem import FilesystemStore
from shared.objectstore.port import (
    ChecksumMismatch,
    ListedObject,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    Retention,
    RetentionMode,
    StoredObject,
    StoreUnavailable,
    VerifiedBytes,
    VerifiedChunks,
)
from shared.objectstore.s3 import S3Store
from shared.settings import ObjectStoreSettings

__all__ = [
    "ChecksumMismatch",
    "FilesystemStore",
    "ListedObject",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreSettings",
    "Retention",
    "RetentionMode",
    "S3Store",
    "StoreUnavailable",
    "StoredObject",
    "VerifiedBytes",
    "VerifiedChunks",
    "make_store",
]
