"""The staging sweep: removes uploads that no registration committed (e.g. a web worker killed mid-upload)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.objectstore.port import ListedObject, ObjectNotFound, ObjectStore, ObjectStoreError

from intake.adapters.staging import STAGED_PREFIX, directive_of

log = logging.getLogger(__name__)

# Keys per database look-up (the IN list of one SELECT).
BATCH = 500


class StagingReferences(Protocol):
    """Which staged keys the intake database still points at."""

    def referenced(self, bucket: str, keys: Sequence[str]) -> set[str]:
        """The keys among `keys` that an attachment row names, or whose directive row exists."""
        ...


@dataclass(frozen=True)
class SweepResult:
    """What one sweep saw and did."""

    listed: int = 0
    young: int = 0
    referenced: int = 0
    removed: tuple[str, ...] = ()
    removed_bytes: int = 0
    failed: tuple[str, ...] = field(default=())


def sweep_staging_orphans(
    *,
    store: ObjectStore,
    bucket: str,
    references: StagingReferences,
    older_than: timedelta,
    now: datetime,
) -> SweepResult:
    """Deletes staged objects older than `older_than` that no directive or attachment row references.

    A registration stages its files first and commits the directive after, so a young unreferenced object
    may belong to a registration still in flight: only objects older than any request can live are
    candidates. A referenced object is never touched (the archive copies it from staging after the event).
    The references are read after the listing, so a row committed meanwhile is seen. Only intake's own
    prefix is listed (routing keeps report files in the same bucket), and a key there that staging_key did
    not make is left alone.
    """
    cutoff = now - older_than
    try:
        listed = list(store.list_objects(bucket, STAGED_PREFIX))
    except ObjectNotFound:
        return SweepResult()  # no bucket yet: nothing was ever staged
    old = [item for item in listed if directive_of(item.key) is not None and item.last_modified < cutoff]
    keep: set[str] = set()
    for chunk in _chunks(old, BATCH):
        keep |= references.referenced(bucket, [item.key for item in chunk])
    removed: list[ListedObject] = []
    failed: list[str] = []
    for item in old:
        if item.key in keep:
            continue
        try:
            store.delete(bucket, item.key)
        except ObjectStoreError as exc:
            log.warning("staging sweep could not remove %s/%s: %s", bucket, item.key, exc)
            failed.append(item.key)
            continue
        removed.append(item)
    return SweepResult(
        listed=len(listed),
        young=sum(1 for item in listed if item.last_modified >= cutoff),
        referenced=len(keep),
        removed=tuple(item.key for item in removed),
        removed_bytes=sum(item.size for item in removed),
        failed=tuple(failed),
    )


def _chunks(items: Sequence[ListedObject], size: int) -> Iterable[Sequence[ListedObject]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
