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
