"""Fixity: comparing what the store returns with what was recorded, and the summary of a sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FixityOutcome:
    """The result of re-checking one record."""

    record_id: str
    ok: bool
    actual_sha256: str | None
    detail: str


def judge(
    record_id: str,
    *,
    expected_sha256: str,
    actual_sha256: str | None,
    expected_version: str | None = None,
    actual_version: str | None = None,
) -> FixityOutcome:
    """Missing bytes, other bytes or another object version than the one archived all fail."""
    if actual_sha256 is None:
        return FixityOutcome(record_id, False, None, "the archived object is missing")
    if actual_sha256 != expected_sha256:
        return FixityOutcome(
            record_id, False, actual_sha256, f"SHA-256 is {actual_sha256}, recorded {expected_sha256}"
        )
    if expected_version and actual_version and expected_version != actual_version:
        return FixityOutcome(
            record_id,
            False,
            actual_sha256,
            f"current object version is {actual_version}, archived {expected_version}",
        )
    return FixityOutcome(record_id, True, actual_sha256, "ok")


def judge_record_against_audit(
    record_id: str,
    *,
    column_sha256: str,
    column_key: str,
    audited_seq: int | None,
    audited_intact: bool,
    audited_sha256: str | None,
    audited_key: str | None,
) -> FixityOutcome | None:
    """The records row must still say what the audit chain recorded when the record was archived.

    The chain's entry is the reference, not the row: changing the bytes, the store's digest and the
    row's sha256 together is then still caught. None when they agree.
    """
    if audited_seq is None:
        return FixityOutcome(record_id, False, None, "the audit chain holds no record_archived entry for it")
    if not audited_intact:
        return FixityOutcome(
            record_id, False, None, f"its record_archived entry (audit entry {audited_seq}) was altered"
        )
    if audited_sha256 != column_sha256 or (audited_key is not None and audited_key != column_key):
        return FixityOutcome(
            record_id,
            False,
            None,
            f"the audit chain recorded SHA-256 {audited_sha256} at {audited_key} when it was archived "
            f"(entry {audited_seq}); the record now says {column_sha256} at {column_key}",
        )
    return None


@dataclass
class FixityRunSummary:
    """What one sweep (or one manual check) found."""

    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    checked: int = 0
    failed: int = 0
    failures: list[FixityOutcome] = field(default_factory=list)

    def add(self, outcome: FixityOutcome) -> None:
        self.checked += 1
        if not outcome.ok:
            self.failed += 1
            self.failures.append(outcome)
