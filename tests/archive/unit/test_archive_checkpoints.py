"""Audit checkpoints on SQLite and the filesystem store: keys, and what a checkpoint round costs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from archive.adapters import audit_log
from archive.audit import LockedCheckpoint, verify_audit, write_checkpoint
from archive.domain.audit import (
    CHECKPOINT_PREFIX,
    AuditEvent,
    Checkpoint,
    CheckpointRow,
    checkpoint_key,
    compare_checkpoint_rows,
    count_in_checkpoint_key,
    unindexed_checkpoints,
)


class ReadCountingStore:
    """The store, counting the reads of checkpoint objects."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.checkpoint_reads = 0

    def read(self, bucket, key):
        if key.startswith(CHECKPOINT_PREFIX):
            self.checkpoint_reads += 1
        return self._inner.read(bucket, key)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _append(engine, n: int = 1) -> None:
    with engine.begin() as conn:
        for i in range(n):
            audit_log.append(
                conn,
                AuditEvent(action="đọc", actor="auditor-1", occurred_at=datetime.now(UTC), details={"i": i}),
            )


def test_checkpoint_keys_name_their_count_in_order():
    assert checkpoint_key(7) == "checkpoints/0000000000/00000000000000000007.json"
    assert checkpoint_key(12_345) == "checkpoints/0000000001/00000000000000012345.json"
    assert count_in_checkpoint_key(checkpoint_key(12_345)) == 12_345
    assert count_in_checkpoint_key("checkpoints/20261204T101010.000000Z.json") is None
    assert sorted([checkpoint_key(10_000), checkpoint_key(9_999)]) == [
        checkpoint_key(9_999),
        checkpoint_key(10_000),
    ]


def test_a_round_reads_one_checkpoint_however_many_there_are_and_none_when_nothing_changed(engine, vault):
    for _ in range(6):
        _append(engine)
        assert write_checkpoint(engine=engine, vault=vault).ok
    counting = ReadCountingStore(vault.store)
    writer = dataclasses.replace(vault, store=counting)

    _append(engine)
    first = write_checkpoint(engine=engine, vault=writer)  # a writer that just started: lists all, reads one
    assert first.ok and first.checkpoint.count == 7 and counting.checkpoint_reads == 1
    reference = LockedCheckpoint(first.checkpoint_key, first.checkpoint)
    again = write_checkpoint(engine=engine, vault=writer, reference=reference)
    assert again.ok and counting.checkpoint_reads == 1  # nothing new: no listing read at all

    full = verify_audit(engine=engine, vault=vault)
    assert full.ok and full.checkpoints_checked == 7


def test_a_rowless_checkpoint_is_tampering_only_when_it_contradicts_the_chain():
    now = datetime.now(UTC)
    locked = {
        checkpoint_key(1): Checkpoint(1, "a" * 64, now),
        checkpoint_key(2): Checkpoint(2, "b" * 64, now),
        checkpoint_key(3): Checkpoint(3, "c" * 64, now),
    }
    rows = [CheckpointRow(key=checkpoint_key(1), count=1, head_hash="a" * 64)]
    contradicted = {checkpoint_key(3)}
    problems = compare_checkpoint_rows(locked, rows, contradicted)
    assert problems == [
        f"locked checkpoint {checkpoint_key(3)} has no row in the database (checkpoint rows were deleted)"
    ]
    assert unindexed_checkpoints(locked, rows, contradicted) == [checkpoint_key(2)]
    added = [*rows, CheckpointRow(key="checkpoints/forged.json", count=2, head_hash="b" * 64)]
    assert any("forged.json has no locked object" in p for p in compare_checkpoint_rows(locked, added))
