"""The object-store port and its adapters (filesystem and S3/MinIO/Ceph RGW), re-exported for callers."""

from shared.objectstore.capabilities import (
    FULL_CAPABILITIES,
    StoreCapabilities,
    StoreLacksCapability,
    WritePlan,
    plan_writes,
)
from shared.objectstore.factory import make_store
from shared.objectstore.filesystem import FilesystemStore
from shared.objectstore.keylock import AdvisoryKeyLock, KeyLock
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
    "FULL_CAPABILITIES",
    "AdvisoryKeyLock",
    "ChecksumMismatch",
    "FilesystemStore",
    "KeyLock",
    "ListedObject",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreSettings",
    "Retention",
    "RetentionMode",
    "S3Store",
    "StoreCapabilities",
    "StoreLacksCapability",
    "StoreUnavailable",
    "StoredObject",
    "VerifiedBytes",
    "VerifiedChunks",
    "WritePlan",
    "make_store",
    "plan_writes",
]
