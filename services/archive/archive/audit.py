"""The audit chain's verification and its checkpoints in the object-locked bucket."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import cast

from shared.objectstore.port import ObjectLocked, ObjectNotFound, Retention, RetentionMode
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from archive import messages
from archive.adapters import audit_log, repository
from archive.common import Clock, Vault, emit, utcnow
from archive.domain.audit import (
    CHECKPOINT_GROUP,
    CHECKPOINT_PREFIX,
    ChainVerification,
    ChainWalker,
    Checkpoint,
    CheckpointRow,
    check_against_checkpoint,
    checkpoint_body,
    checkpoint_group_prefix,
    checkpoint_key,
    compare_checkpoint_rows,
    count_in_checkpoint_key,
    parse_checkpoint,
    unindexed_checkpoints,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_PREFIX",
    "AuditVerification",
    "LockedCheckpoint",
    "index_locked_checkpoints",
    "verify_audit",
    "write_checkpoint",
]


@dataclass(frozen=True)
class LockedCheckpoint:
    """A checkpoint as the object-locked bucket holds it, under its key."""

    key: str
    checkpoint: Checkpoint


@dataclass(frozen=True)
class AuditVerification:
    """The chain walk, the newest locked checkpoint and every way the two (or the rows) disagree."""

    chain: ChainVerification
    checkpoint: Checkpoint | None = None
    checkpoint_key: str | None = None
    problems: tuple[str, ...] = ()
    checkpoints_checked: int = 0
    # Locked checkpoints that agree with the chain but have no row yet (in flight, or their writer died).
    unindexed: tuple[str, ...] = ()

    @property
    def checkpoint_problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    @property
    def reason(self) -> str | None:
        return self.chain.reason or self.checkpoint_problem


def _read_locked(
    vault: Vault, prefixes: list[str], *, newest_only: bool = False
) -> tuple[dict[str, Checkpoint], list[str]]:
    """The checkpoint objects under the prefixes, listed and read from the bucket itself.

    `newest_only` reads just the object(s) whose key names the highest count (and any key of another form):
    what a writer needs, at one read per round however many checkpoints the groups hold.
    """
    keys = [
        listed.key for prefix in prefixes for listed in vault.store.list_objects(vault.archive_bucket, prefix)
    ]
    if newest_only:
        counts = {key: count_in_checkpoint_key(key) for key in keys}
        top = max((c for c in counts.values() if c is not None), default=None)
        keys = [key for key, count in counts.items() if count is None or count == top]
    found: dict[str, Checkpoint] = {}
    problems: list[str] = []
    for key in keys:
        try:
            checkpoint = parse_checkpoint(vault.store.read(vault.archive_bucket, key))
        except ObjectNotFound:
            problems.append(f"locked checkpoint {key} was listed but cannot be read")
            continue
        except ValueError as exc:
            problems.append(f"locked checkpoint {key} is unreadable: {exc}")
            continue
        named = count_in_checkpoint_key(key)
        if named is not None and named != checkpoint.count:
            problems.append(
                f"locked checkpoint {key} holds the count {checkpoint.count}, not the one its key names"
            )
        found[key] = checkpoint
    return found, problems


def _newest(locked: dict[str, Checkpoint]) -> LockedCheckpoint | None:
    if not locked:
        return None
    key = max(locked, key=lambda k: (locked[k].count, locked[k].created_at, k))
    return LockedCheckpoint(key, locked[key])


def verify_audit(*, engine: Engine, vault: Vault) -> AuditVerification:
    """Walks the whole chain and compares it with every checkpoint the locked bucket holds.

    The bucket is the authority: each checkpoint object is listed and read from it, the entry it names
    must still hash to its head, and every checkpoint row must be one of those objects, unedited.
    Deleting rows to hide a rewrite, adding or editing rows, cutting entries or re-chaining history all
    show as problems; a locked checkpoint that merely has no row yet but agrees with the chain does not.

    The reads are ordered against the writer's (object stored, then row committed, from a head already
    committed): rows first, then the listing, then the chain. A row read was committed after its object
    was stored, so the later listing holds that object; an object listed was written from entries already
    committed, so the later chain read holds them. No checkpoint in flight can look like tampering.
    """
    locked, problems, rows = _read_locked_and_rows(engine, vault, [CHECKPOINT_PREFIX])
    walker = ChainWalker()
    stored_hash, stored_count = _hashes_at(engine, {cp.count for cp in locked.values()}, walker)
    contradicted: dict[str, str] = {}
    for key in sorted(locked, key=lambda k: (locked[k].count, k)):
        problem = _contradiction(locked[key], stored_hash, stored_count)
        if problem is not None:
            contradicted[key] = f"{key}: {problem}"
    problems.extend(compare_checkpoint_rows(locked, rows, contradicted))
    problems.extend(contradicted.values())
    newest = _newest(locked)
    return AuditVerification(
        chain=walker.result(),
        checkpoint=newest.checkpoint if newest else None,
        checkpoint_key=newest.key if newest else None,
        problems=tuple(problems),
        checkpoints_checked=len(locked),
        unindexed=tuple(unindexed_checkpoints(locked, rows, contradicted)),
    )


def _read_locked_and_rows(
    engine: Engine, vault: Vault, prefixes: list[str]
) -> tuple[dict[str, Checkpoint], list[str], list[CheckpointRow]]:
    """The checkpoint rows, then the locked objects: in that order (see verify_audit)."""
    with engine.connect() as conn:
        rows = repository.checkpoint_rows(conn)
    locked, problems = _read_locked(vault, prefixes)
    return locked, problems, rows


def _hashes_at(
    engine: Engine, counts: set[int], walker: ChainWalker | None = None
) -> tuple[dict[int, str], int]:
    """The stored hash at each of `counts` and the stored chain's length, in one read of the chain."""
    stored_hash: dict[int, str] = {}
    stored_count = 0
    for entry in audit_log.iter_entries(engine):
        if walker is not None:
            walker.feed(entry)  # keeps reading past a break: the checkpoints are compared with what is stored
        stored_count = max(stored_count, entry.seq)
        if entry.seq in counts:
            stored_hash[entry.seq] = entry.hash
    return stored_hash, stored_count


def _contradiction(checkpoint: Checkpoint, stored_hash: dict[int, str], stored_count: int) -> str | None:
    if checkpoint.count == 0:
        return None
    return check_against_checkpoint(stored_hash.get(checkpoint.count), stored_count, checkpoint)


def _index(engine: Engine, key: str, checkpoint: Checkpoint) -> bool:
    """Adds the row of a locked checkpoint unless it has one; True when this call added it."""
    try:
        with engine.begin() as conn:
            if repository.checkpoint_exists(conn, key):
                return False
            repository.add_checkpoint(
                conn,
                key=key,
                count=checkpoint.count,
                head_hash=checkpoint.head_hash,
                created_at=checkpoint.created_at,
            )
    except IntegrityError:
        return False  # another writer indexed it at the same moment
    return True


def index_locked_checkpoints(*, engine: Engine, vault: Vault) -> list[str]:
    """Adds the missing row of every locked checkpoint that agrees with the chain; returns their keys.

    A writer that dies between storing a checkpoint object and committing its row leaves an object without
    a row; the worker runs this when it starts. A checkpoint that contradicts the chain is never indexed
    (verification reports it), and rows are only ever added, never changed.
    """
    locked, _, rows = _read_locked_and_rows(engine, vault, [CHECKPOINT_PREFIX])
    indexed = {row.key for row in rows}
    missing = {key: cp for key, cp in locked.items() if key not in indexed}
    if not missing:
        return []
    stored_hash, stored_count = _hashes_at(engine, {cp.count for cp in missing.values()})
    added: list[str] = []
    for key in sorted(missing, key=lambda k: (missing[k].count, k)):
        checkpoint = missing[key]
        if checkpoint.count == 0 or _contradiction(checkpoint, stored_hash, stored_count) is not None:
            continue
        if _index(engine, key, checkpoint):
            log.warning(
                "audit checkpoint %s had no row (its writer stopped before indexing it): indexed", key
            )
            added.append(key)
    return added


def _extends(engine: Engine, newest: LockedCheckpoint | None) -> tuple[ChainVerification, list[str]]:
    """Whether the stored chain still holds `newest` and everything after it links on from it."""
    if newest is None:
        return audit_log.verify(engine), []
    base = newest.checkpoint
    head_count, head_hash = audit_log.head(engine)
    problem = check_against_checkpoint(audit_log.hash_at(engine, base.count), head_count, base)
    if problem is not None:
        return ChainVerification(ok=True, count=head_count, head_hash=head_hash), [f"{newest.key}: {problem}"]
    walker = ChainWalker(count=base.count, head_hash=base.head_hash)
    for entry in audit_log.iter_entries(engine, after=base.count):
        if not walker.feed(entry):
            break
    return walker.result(), []


def _announce(engine: Engine, result: AuditVerification, now_text: str) -> None:
    reason = result.reason or "audit chain broken"
    log.error("audit chain verification failed: %s", reason)
    with engine.begin() as conn:
        emit(
            conn,
            messages.AUDIT_CHAIN_BROKEN,
            {
                "count": result.chain.count,
                "head_hash": result.chain.head_hash,
                "broken_seq": result.chain.broken_seq,
                "reason": reason,
                "detected_at": now_text,
            },
        )


def write_checkpoint(
    *,
    engine: Engine,
    vault: Vault,
    clock: Clock = utcnow,
    reference: LockedCheckpoint | None = None,
    announced: str | None = None,
) -> AuditVerification:
    """Checkpoints the chain's head as a locked object checkpoints/<group>/<count>.json, and indexes it.

    Only a chain that extends the newest locked checkpoint is checkpointed: that checkpoint is found in
    the bucket (all of it, or, given the `reference` this writer saw last, the groups from there on), the
    stored entry at its count must still hash to its head, and every entry after it must link on from it.
    Otherwise nothing is written and the break is announced (archive.audit_chain_broken.v1), unless its
    reason is `announced` already, so a forged chain never becomes the reference.
    """
    head_count, head_hash = audit_log.head(engine)
    if reference is not None and (head_count, head_hash) == (
        reference.checkpoint.count,
        reference.checkpoint.head_hash,
    ):
        # Nothing appended since this writer's last checkpoint, and the head is the checkpointed one.
        chain = ChainVerification(ok=True, count=head_count, head_hash=head_hash)
        return AuditVerification(chain=chain, checkpoint=reference.checkpoint, checkpoint_key=reference.key)
    if reference is None:
        prefixes = [CHECKPOINT_PREFIX]
    else:
        # One group past the head too: a checkpoint beyond it means entries were cut off.
        low = min(reference.checkpoint.count, head_count) // CHECKPOINT_GROUP
        high = max(reference.checkpoint.count, head_count) // CHECKPOINT_GROUP + 1
        prefixes = [checkpoint_group_prefix(group * CHECKPOINT_GROUP) for group in range(low, high + 1)]
    locked, problems = _read_locked(vault, prefixes, newest_only=True)
    if reference is not None:
        locked.setdefault(reference.key, reference.checkpoint)
    newest = _newest(locked)
    chain, extension_problems = _extends(engine, newest)
    problems.extend(extension_problems)
    now = clock()
    result = AuditVerification(
        chain=chain,
        checkpoint=newest.checkpoint if newest else None,
        checkpoint_key=newest.key if newest else None,
        problems=tuple(problems),
        checkpoints_checked=len(locked),
    )
    if not result.ok:
        if result.reason != announced:
            _announce(engine, result, now.isoformat())
        return result
    if newest is not None and (reference is None or newest.key != reference.key):
        # Found in the bucket and extended by the chain: index it if its writer did not get to (it died
        # between the object and the row). One look-up, only in rounds that read the bucket.
        _index(engine, newest.key, newest.checkpoint)
    if chain.count == 0 or (newest is not None and chain.count == newest.checkpoint.count):
        return result  # nothing new since the last checkpoint (or nothing at all yet)
    checkpoint = Checkpoint(chain.count, chain.head_hash, now)
    key = checkpoint_key(chain.count)
    body = checkpoint_body(checkpoint)
    retain_until = vault.retention.decide(vault.retention.default_class, now).retain_until
    try:
        vault.store.put(
            vault.archive_bucket,
            key,
            body,
            size=len(body),
            content_type="application/json",
            sha256=hashlib.sha256(body).hexdigest(),
            retention=Retention(mode=cast(RetentionMode, vault.lock_mode), retain_until=retain_until),
        )
    except ObjectLocked:
        # Another writer checkpointed this very count a moment ago: its object is the reference.
        checkpoint = parse_checkpoint(vault.store.read(vault.archive_bucket, key))
        if checkpoint.head_hash != chain.head_hash:
            forked = AuditVerification(
                chain=chain,
                checkpoint=checkpoint,
                checkpoint_key=key,
                problems=(f"{key}: {check_against_checkpoint(chain.head_hash, chain.count, checkpoint)}",),
            )
            _announce(engine, forked, now.isoformat())
            return forked
    _index(engine, key, checkpoint)
    log.info("audit checkpoint %s: %d entries, head %s", key, chain.count, chain.head_hash)
    return AuditVerification(
        chain=chain, checkpoint=checkpoint, checkpoint_key=key, checkpoints_checked=len(locked) + 1
    )
