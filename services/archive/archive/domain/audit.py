"""The audit log's entries, their canonical JSON and the hash chain that links them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
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


class ChainWalker:
    """Verifies entries one by one in seq order, so a long chain never needs to sit in memory."""

    def __init__(self) -> None:
        self.count = 0
        self.head_hash = GENESIS_HASH
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
