"""The audit log's entries, their canonical JSON and the hash chain that links them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """What is to be appended: everything an entry holds except its position and hashes."""

    action: str
    actor: str
    occurred_at: datetime
    directive_id: str | None = None
    record_id: str | None = None
    source_event_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    """One chained entry; `hash` = sha256(prev_hash + canonical JSON of the entry)."""

    seq: int
    action: str
    actor: str
    occurred_at: datetime
    directive_id: str | None
    record_id: str | None
    source_event_id: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainVerification:
    """Outcome of walking the chain: the count and head, or the first entry that does not fit."""

    ok: bool
    count: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None


def utc_text(moment: datetime) -> str:
    """A fixed-width UTC form (microseconds always present) so stored text sorts and hashes the same."""
    if moment.tzinfo is None:
        raise ValueError("audit times must carry a UTC offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def canonical_json(
    *,
    seq: int,
    action: str,
    actor: str,
    occurred_at: datetime,
    directive_id: str | None,
    record_id: str | None,
    source_event_id: str | None,
    details: Mapping[str, Any],
) -> bytes:
    """Sorted keys, no spaces, UTF-8 (Vietnamese kept as is): the same entry always gives the same bytes."""
    body = {
        "seq": seq,
        "action": action,
        "actor": actor,
        "occurred_at": utc_text(occurred_at),
        "directive_id": directive_id,
        "record_id": record_id,
        "source_event_id": source_event_id,
        "details": dict(details),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """sha256(previous hash as hex text + canonical JSON bytes), as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def _canonical_of(entry: AuditEntry | AuditEvent, seq: int) -> bytes:
    return canonical_json(
        seq=seq,
        action=entry.action,
        actor=entry.actor,
        occurred_at=entry.occurred_at,
        directive_id=entry.directive_id,
        record_id=entry.record_id,
        source_event_id=entry.source_event_id,
        details=entry.details,
    )


def next_entry(event: AuditEvent, *, prev_seq: int, prev_hash: str) -> AuditEntry:
    """The entry that follows (prev_seq, prev_hash) in the chain."""
    seq = prev_seq + 1
    digest = chain_hash(prev_hash, _canonical_of(event, seq))
    return AuditEntry(
        seq=seq,
        action=event.action,
        actor=event.actor,
        occurred_at=event.occurred_at,
        directive_id=event.directive_id,
        record_id=event.record_id,
        source_event_id=event.source_event_id,
        details=dict(event.details),
        prev_hash=prev_hash,
        hash=digest,
    )


def entry_intact(entry: AuditEntry) -> bool:
    """Whether the entry still hashes to its own hash (its place in the chain is the walker's business)."""
    return chain_hash(entry.prev_hash, _canonical_of(entry, entry.seq)) == entry.hash


class ChainWalker:
    """Verifies entries one by one in seq order, so a long chain never needs to sit in memory."""

    def __init__(self, *, count: int = 0, head_hash: str = GENESIS_HASH) -> None:
        # Started from a checkpoint (count, head_hash), it checks only that what follows extends it.
        self.count = count
        self.head_hash = head_hash
        self.broken: ChainVerification | None = None

    def feed(self, entry: AuditEntry) -> bool:
        """Checks one more entry; False (and `broken` set) at the first that does not fit."""
        if self.broken is not None:
            return False
        expected_seq = self.count + 1
        reason: str | None = None
        if entry.seq != expected_seq:
            reason = f"expected entry {expected_seq}, found {entry.seq} (an entry is missing or reordered)"
        elif entry.prev_hash != self.head_hash:
            reason = "prev_hash does not match the hash of the entry before it"
        elif chain_hash(self.head_hash, _canonical_of(entry, entry.seq)) != entry.hash:
            reason = "content does not match its hash (the entry was altered)"
        if reason is not None:
            self.broken = ChainVerification(
                ok=False, count=self.count, head_hash=self.head_hash, broken_seq=expected_seq, reason=reason
            )
            return False
        self.count = entry.seq
        self.head_hash = entry.hash
        return True

    def result(self) -> ChainVerification:
        if self.broken is not None:
            return self.broken
        return ChainVerification(ok=True, count=self.count, head_hash=self.head_hash)


def verify_chain(entries: Iterable[AuditEntry]) -> ChainVerification:
    """Walks the entries in seq order; the first one whose position, link or hash is wrong breaks it."""
    walker = ChainWalker()
    for entry in entries:
        if not walker.feed(entry):
            break
    return walker.result()


@dataclass(frozen=True)
class Checkpoint:
    """The chain's count and head hash at a moment, written to the object-locked bucket."""

    count: int
    head_hash: str
    created_at: datetime


CHECKPOINT_PREFIX = "checkpoints/"
# Checkpoint objects are grouped by count so a writer that knows the last one lists only a small prefix.
CHECKPOINT_GROUP = 10_000


def checkpoint_key(count: int) -> str:
    """The object key of the checkpoint of the first `count` entries: one key per count, in count order."""
    return f"{CHECKPOINT_PREFIX}{count // CHECKPOINT_GROUP:010d}/{count:020d}.json"


def count_in_checkpoint_key(key: str) -> int | None:
    """The count a checkpoint key names (None for a key of another form, such as an older timestamp key)."""
    name = key.rsplit("/", 1)[-1]
    if not key.startswith(CHECKPOINT_PREFIX) or not name.endswith(".json") or len(name) != 25:
        return None
    digits = name[:-5]
    return int(digits) if digits.isdigit() else None


def checkpoint_group_prefix(count: int) -> str:
    return f"{CHECKPOINT_PREFIX}{count // CHECKPOINT_GROUP:010d}/"


def checkpoint_body(checkpoint: Checkpoint) -> bytes:
    """The JSON the locked object holds."""
    return json.dumps(
        {
            "count": checkpoint.count,
            "head_hash": checkpoint.head_hash,
            "created_at": checkpoint.created_at.isoformat(),
        },
        sort_keys=True,
    ).encode("utf-8")


def parse_checkpoint(data: bytes) -> Checkpoint:
    """A checkpoint object's content; ValueError when it is not one."""
    try:
        raw = json.loads(data.decode("utf-8"))
        checkpoint = Checkpoint(
            count=int(raw["count"]),
            head_hash=str(raw["head_hash"]),
            created_at=datetime.fromisoformat(str(raw["created_at"])),
        )
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a checkpoint: {exc}") from exc
    if checkpoint.count < 0 or len(checkpoint.head_hash) != 64 or checkpoint.created_at.tzinfo is None:
        raise ValueError("not a checkpoint: count, head_hash or created_at out of range")
    return checkpoint


@dataclass(frozen=True)
class CheckpointRow:
    """What the database says about one checkpoint: an index, never the authority."""

    key: str
    count: int
    head_hash: str


def compare_checkpoint_rows(
    locked: Mapping[str, Checkpoint], rows: Iterable[CheckpointRow], contradicted: Collection[str] = ()
) -> list[str]:
    """Tampering between the locked objects (the authority) and the database's index of them.

    A row without its object, or one that says something else than its object, means rows were added or
    edited. A locked object without its row is tampering only when it also contradicts the chain (its key
    is in `contradicted`): rows deleted to hide a rewrite. One that agrees with the chain is merely not
    indexed yet (a checkpoint in flight, or a writer that died between its object and its row) — see
    `unindexed_checkpoints`. The rows must be read before the objects are listed (the writer stores the
    object, then the row), so that a row seen always has its object listed.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for row in rows:
        seen.add(row.key)
        found = locked.get(row.key)
        if found is None:
            problems.append(f"checkpoint row {row.key} has no locked object in the bucket (a row was added)")
        elif (found.count, found.head_hash) != (row.count, row.head_hash):
            problems.append(
                f"checkpoint row {row.key} says {row.count} entries / {row.head_hash}, the locked object "
                f"{found.count} / {found.head_hash} (the row was edited)"
            )
    for key in sorted(set(locked) - seen):
        if key in contradicted:
            problems.append(
                f"locked checkpoint {key} has no row in the database (checkpoint rows were deleted)"
            )
    return problems


def unindexed_checkpoints(
    locked: Mapping[str, Checkpoint], rows: Iterable[CheckpointRow], contradicted: Collection[str] = ()
) -> list[str]:
    """The locked checkpoints that have no row but agree with the chain: to be indexed, not tampering."""
    indexed = {row.key for row in rows}
    return sorted(key for key in locked if key not in indexed and key not in contradicted)


def check_against_checkpoint(hash_at_count: str | None, count: int, checkpoint: Checkpoint) -> str | None:
    """None when the chain still holds the checkpointed head; otherwise why it does not."""
    if count < checkpoint.count:
        when = utc_text(checkpoint.created_at)
        return f"the chain has {count} entries but the checkpoint of {when} saw {checkpoint.count}"
    if hash_at_count != checkpoint.head_hash:
        return (
            f"entry {checkpoint.count} hashes to {hash_at_count} but checkpoint of "
            f"{utc_text(checkpoint.created_at)} recorded {checkpoint.head_hash} (the database was rewritten)"
        )
    return None
