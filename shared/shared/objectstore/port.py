"""The object-store port: the Protocol both adapters implement, its value types and its errors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shared.objectstore.capabilities import StoreCapabilities, WritePlan

RetentionMode = Literal["GOVERNANCE", "COMPLIANCE"]
RETENTION_MODES: tuple[str, ...] = ("GOVERNANCE", "COMPLIANCE")
CHUNK_SIZE = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# S3 bucket naming rules, the common subset every S3 server accepts.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class ObjectStoreError(Exception):
    """Base of every object-store error; adapters never let a vendor exception through."""


class ObjectNotFound(ObjectStoreError):
    """The bucket or the object does not exist."""


class ObjectLocked(ObjectStoreError):
    """Retention or legal hold forbids deleting, overwriting or shortening the lock of the object."""


class ChecksumMismatch(ObjectStoreError):
    """What the store holds does not hash to the SHA-256 the caller declared."""


class StoreUnavailable(ObjectStoreError):
    """The store cannot be reached (connection refused, timeout, server error)."""


@dataclass(frozen=True)
class Retention:
    """WORM retention of one object version until `retain_until` (timezone-aware)."""

    mode: RetentionMode
    retain_until: datetime

    def __post_init__(self) -> None:
        if self.mode not in RETENTION_MODES:
            raise ValueError(f"retention mode must be GOVERNANCE or COMPLIANCE, got {self.mode!r}")
        if self.retain_until.tzinfo is None:
            raise ValueError("retain_until must be timezone-aware")

    def active(self, now: datetime | None = None) -> bool:
        return self.retain_until > (now or datetime.now(UTC))


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about one stored object."""

    bucket: str
    key: str
    size: int
    sha256: str
    content_type: str
    version_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    retention: Retention | None = None
    legal_hold: bool = False


@dataclass(frozen=True)
class ListedObject:
    """One object as a bucket listing names it: enough to decide whether to look closer."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, init=False, eq=False)
class VerifiedBytes:
    """Bytes together with their SHA-256 (hex), known to be theirs because it was computed from them.

    `put` trusts the digest of a VerifiedBytes instead of hashing the bytes again (it still compares it with
    the declared `sha256` and size, and S3/MinIO still verify the body server-side). Hence both ways of
    making one compute the digest from the bytes: this constructor hashes them, and a store's verified read
    (`VerifiedChunks.read_all`) hashed them as they arrived. The bytes are `bytes`, immutable, so the digest
    cannot go stale.
    """

    data: bytes = field(repr=False)
    sha256: str

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError("VerifiedBytes holds immutable bytes")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "sha256", hashlib.sha256(data).hexdigest())

    def __len__(self) -> int:
        return len(self.data)


def _hashed_on_read(data: bytes, sha256: str) -> VerifiedBytes:
    """A VerifiedBytes for bytes whose digest was computed as they were read (VerifiedChunks only)."""
    verified = object.__new__(VerifiedBytes)
    object.__setattr__(verified, "data", data)
    object.__setattr__(verified, "sha256", sha256)
    return verified


class VerifiedChunks(Iterator[bytes]):
    """A stored object's bytes in chunks, hashed as they pass; ChecksumMismatch once the last chunk is out if
    they do not hash to the SHA-256 the store recorded (no recorded SHA-256: nothing to compare with).

    Both stores hand out their reads through this, so a caller that needs the whole object in memory can take
    it with `read_all()` as VerifiedBytes and give it to `put` without a second SHA-256 pass.
    """

    def __init__(self, chunks: Iterator[bytes], *, bucket: str, key: str, expected: str) -> None:
        self._chunks = chunks
        self._where = f"{bucket}/{key}"
        self._expected = expected
        self._digest = hashlib.sha256()
        self._started = False
        self._finished = False

    def __next__(self) -> bytes:
        if self._finished:
            raise StopIteration
        self._started = True
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finished = True
            if self._expected and self._digest.hexdigest() != self._expected:
                raise ChecksumMismatch(
                    f"{self._where}: stored data no longer hashes to {self._expected}"
                ) from None
            raise
        self._digest.update(chunk)
        return chunk

    def read_all(self) -> VerifiedBytes:
        """The whole object as VerifiedBytes; only from an untouched stream (ValueError otherwise), so the
        digest covers every byte returned. ChecksumMismatch as for iterating."""
        if self._started:
            raise ValueError(f"{self._where}: read_all needs the stream from its first chunk")
        data = b"".join(self)
        return _hashed_on_read(data, self._digest.hexdigest())


@runtime_checkable
class ObjectStore(Protocol):
    """Blob storage with SHA-256 verification and S3-style object lock."""

    def ensure_bucket(self, bucket: str, *, object_lock: bool = False) -> None: ...

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes | BinaryIO | VerifiedBytes,
        *,
        size: int,
        content_type: str,
        sha256: str,
        metadata: Mapping[str, str] | None = None,
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> StoredObject: ...

    def open(self, bucket: str, key: str) -> AbstractContextManager[VerifiedChunks]: ...

    def open_with_info(
        self, bucket: str, key: str
    ) -> AbstractContextManager[tuple[StoredObject, VerifiedChunks]]: ...

    def read(self, bucket: str, key: str) -> bytes: ...

    def stat(self, bucket: str, key: str) -> StoredObject: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def delete(self, bucket: str, key: str) -> None: ...

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ListedObject]:
        """The bucket's objects whose key starts with `prefix`, in key order (current versions only)."""
        ...

    def set_retention(
        self, bucket: str, key: str, retention: Retention | None, *, bypass_governance: bool = False
    ) -> None: ...

    def set_legal_hold(self, bucket: str, key: str, on: bool) -> None: ...

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        sha256: str,
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> StoredObject: ...

    def server_copy(
        self,
        source: StoredObject,
        dst_bucket: str,
        dst_key: str,
        *,
        sha256: str,
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> StoredObject | None:
        """`source` copied by the store itself, checked against `sha256` with the same guarantees as put;
        None when the store cannot do that (or `dst_key` is taken): the caller then puts the bytes."""
        ...

    def ping(self) -> None: ...

    def capabilities(self) -> StoreCapabilities:
        """What the store's server does (learnt once, on first use)."""
        ...

    def write_plan(self, *, object_lock: bool) -> WritePlan:
        """How puts keep the port's guarantees on this store (`object_lock`: into a versioned, object-lock
        bucket); StoreLacksCapability naming the missing capability when one cannot be kept."""
        ...


def validate_key(key: str) -> str:
    """Refuse keys that could escape a bucket or confuse an S3 server; ValueError when invalid."""
    if not key or len(key.encode("utf-8")) > 1024:
        raise ValueError("object key must be 1..1024 bytes")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}")
    if any(ord(ch) < 32 for ch in key):
        raise ValueError(f"invalid object key {key!r}")
    return key


def validate_bucket(bucket: str) -> str:
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(f"invalid bucket name {bucket!r}")
    return bucket


def validate_sha256(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return sha256


_METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")
RESERVED_METADATA_PREFIX = "docroute-"


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata keys are lowercase ASCII tokens (S3 header names); values may be any Unicode text."""
    checked: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not _METADATA_KEY.match(key) or key.startswith(RESERVED_METADATA_PREFIX):
            raise ValueError(f"invalid metadata key {key!r}: use lowercase a-z, 0-9 and '-'")
        if not isinstance(value, str):
            raise ValueError(f"metadata value of {key!r} must be a string")
        checked[key] = value
    return checked


def check_retention_change(
    bucket: str, key: str, current: Retention, new: Retention | None, bypass_governance: bool
) -> None:
    """S3 object-lock rules for changing an active retention; ObjectLocked when the change is not allowed."""
    if current.mode == "COMPLIANCE":
        if new is None or new.mode != "COMPLIANCE" or new.retain_until < current.retain_until:
            raise ObjectLocked(f"{bucket}/{key}: COMPLIANCE retention can only be extended")
        return
    weakened = new is None or new.retain_until < current.retain_until
    if weakened and not bypass_governance:
        raise ObjectLocked(f"{bucket}/{key}: shortening GOVERNANCE retention needs bypass_governance")


def check_received(bucket: str, key: str, *, size: int, sha256: str, received: int, digest: str) -> None:
    """Refuses bytes whose length or SHA-256 differ from what the caller declared (every store)."""
    if received != size:
        raise ChecksumMismatch(f"{bucket}/{key}: declared size {size}, received {received} bytes")
    if digest != sha256:
        raise ChecksumMismatch(f"{bucket}/{key}: declared sha256 {sha256}, received bytes hash to {digest}")


def check_recorded(bucket: str, key: str, source: StoredObject, sha256: str) -> None:
    """Refuses to copy an object whose recorded SHA-256 is not the one the caller expects."""
    if source.sha256 != sha256:
        raise ChecksumMismatch(f"{bucket}/{key}: recorded sha256 {source.sha256}, expected {sha256}")
