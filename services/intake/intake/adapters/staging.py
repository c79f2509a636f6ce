"""The staging area of the object store where intake keeps uploaded files under directives/<id>/<sha256>."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager

from shared.objectstore.port import ObjectStore, ObjectStoreError, StoredObject

from intake.adapters.spool import Blob

log = logging.getLogger(__name__)


# The staging bucket also holds routing's report files (tasks/...): intake's own keys are under this prefix.
STAGED_PREFIX = "directives/"
_STAGED_KEY = re.compile(r"^directives/(?P<directive>[^/]+)/[0-9a-f]{64}$")


def staging_key(directive_id: str, sha256: str) -> str:
    return f"{STAGED_PREFIX}{directive_id}/{sha256}"


def directive_of(key: str) -> str | None:
    """The directive id of a key staging_key made, or None for a key intake did not write."""
    match = _STAGED_KEY.match(key)
    return match.group("directive") if match else None


class StagingArea:
    """One bucket of an ObjectStore; makes sure the bucket exists before the first write of the process."""

    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket
        self._ready = False
        self._lock = threading.Lock()

    def _ensure_bucket(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                self.store.ensure_bucket(self.bucket)
                self._ready = True

    def put(self, key: str, blob: Blob, *, content_type: str, sha256: str) -> StoredObject:
        """Writes and verifies (the store re-hashes what it stored and refuses a mismatch).

        The blob is handed over as a stream: a spooled file is never read into memory here.
        """
        self._ensure_bucket()
        return self.store.put(
            self.bucket, key, blob.reader(), size=blob.size, content_type=content_type, sha256=sha256
        )

    def discard(self, keys: list[str]) -> None:
        """Best-effort removal of staged objects after a failed registration; failures are logged."""
        for key in keys:
            try:
                self.store.delete(self.bucket, key)
            except ObjectStoreError as exc:
                log.warning("could not remove staged object %s/%s: %s", self.bucket, key, exc)

    def open(self, bucket: str, key: str) -> AbstractContextManager[Iterator[bytes]]:
        return self.store.open(bucket, key)

    def ping(self) -> None:
        self.store.ping()
