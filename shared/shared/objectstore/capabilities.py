"""What an object store's server can do, and how each of the port's guarantees is kept on it (or refused)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from shared.objectstore.port import ObjectStoreError

Integrity = Literal["checksum-sha256", "content-md5", "read-back", "local"]
SingleVersion = Literal["conditional-put", "key-lock", "local", "not-needed"]
LockTiming = Literal["on-put", "after-verify", "local", "not-needed"]


class StoreLacksCapability(ObjectStoreError):
    """The store cannot keep one of the port's guarantees by any means; the message names what it lacks."""


@dataclass(frozen=True)
class StoreCapabilities:
    """What the server was seen to do when probed (True: it behaves as S3 specifies)."""

    conditional_put_versioned: (
        bool  # PUT with If-None-Match: * refused (412) over a key of a versioned bucket
    )
    conditional_put_unversioned: bool  # the same on an unversioned bucket
    checksum_sha256: bool  # a PUT whose x-amz-checksum-sha256 does not match the body is refused
    content_md5: bool  # a PUT whose Content-MD5 does not match the body is refused
    lock_on_put: bool  # retention and legal-hold headers on PutObject are applied
    retention_enforced: bool  # a version under GOVERNANCE retention cannot be deleted without bypass
    copy_source_conditions: bool  # CopyObject honours x-amz-copy-source-if-match (reported, not needed:
    # a server-side copy is checked by the checksum the store computes of what it wrote)
    # CopyObject with x-amz-checksum-algorithm: SHA256 answers the SHA-256 of the copy it wrote
    copy_checksum_sha256: bool = False
    copy_lock: bool = False  # a legal-hold header on CopyObject is applied to the copy
    copy_conditional: bool = (
        False  # CopyObject with If-None-Match: * refused over a key of a versioned bucket
    )

    def as_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


# What S3 and MinIO answer to every probe; the filesystem store keeps these guarantees itself.
FULL_CAPABILITIES = StoreCapabilities(
    conditional_put_versioned=True,
    conditional_put_unversioned=True,
    checksum_sha256=True,
    content_md5=True,
    lock_on_put=True,
    retention_enforced=True,
    copy_source_conditions=True,
    copy_checksum_sha256=True,
    copy_lock=True,
    copy_conditional=False,
)


@dataclass(frozen=True)
class WritePlan:
    """How a put keeps each guarantee on this store.

    integrity: how the store is made to refuse bytes other than the ones hashed (server-checked SHA-256,
      server-checked MD5 of the very bytes whose SHA-256 was computed, or a read-back before the object is
      locked); single_version: what makes sure a locked key never gets a second version (the server's
      conditional PUT, or a lock of the caller's own held while checking and writing); lock: when retention
      and legal hold are applied (with the PUT, or once the read-back confirmed the bytes, a provisional
      legal hold guarding the object meanwhile).
    """

    integrity: Integrity
    single_version: SingleVersion
    lock: LockTiming

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


LOCAL_PLAN = WritePlan(integrity="local", single_version="local", lock="local")


def plan_writes(capabilities: StoreCapabilities, *, object_lock: bool, has_key_lock: bool) -> WritePlan:
    """The safest means the store offers for each guarantee; StoreLacksCapability (one line naming the
    missing capability) when a guarantee cannot be kept at all.

    `object_lock`: the plan for writes into object-lock (versioned) buckets; a plain bucket holds nothing
    locked, so only the integrity guarantee applies there.
    """
    if capabilities.checksum_sha256:
        integrity: Integrity = "checksum-sha256"
    elif capabilities.content_md5:
        integrity = "content-md5"
    else:
        integrity = "read-back"
    if not object_lock:
        return WritePlan(integrity=integrity, single_version="not-needed", lock="not-needed")
    if not capabilities.retention_enforced:
        raise StoreLacksCapability(
            "object store does not enforce object-lock retention (a retained version could be deleted)"
        )
    if not capabilities.lock_on_put:
        raise StoreLacksCapability("object store ignores object-lock headers on PutObject")
    if capabilities.conditional_put_versioned:
        single: SingleVersion = "conditional-put"
    elif has_key_lock:
        single = "key-lock"
    else:
        raise StoreLacksCapability(
            "object store ignores If-None-Match: * on versioned buckets and no key lock is configured "
            "(a locked record could get a second version)"
        )
    # Bytes nobody checked are locked only once read back and found right: a corrupted version under
    # retention could never be removed again.
    lock: LockTiming = "after-verify" if integrity == "read-back" else "on-put"
    return WritePlan(integrity=integrity, single_version=single, lock=lock)
