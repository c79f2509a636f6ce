"""Archived records, the legal hold rules and the diacritics-free search key."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime

from archive.domain.errors import MissingReason
from archive.domain.retention import PERMANENT

SOURCE_ATTACHMENT = "attachment"
SOURCE_REPORT = "report"
# The edXML packet by which a sender revoked the directive.
SOURCE_REVOCATION = "revocation"
# The edXML packet by which a sender updated the directive (the files it added are attachments).
SOURCE_UPDATE = "update"


def fold(text: str) -> str:
    """Lower case without diacritics, đ as d: "Hỏa tốc" and "hoa toc" fold to the same text."""
    swapped = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", swapped)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn").casefold()


def archive_key(directive_id: str, sha256: str) -> str:
    """Deterministic, so a redelivered event finds the object it already copied."""
    return f"records/{directive_id}/{sha256}"


@dataclass(frozen=True)
class Record:
    """One stored document: an immutable object version plus what the archive knows about it."""

    id: str
    directive_id: str
    source_event_id: str
    source_kind: str  # attachment | report
    source_ref: str  # attachment id, or task id for reports
    filename: str
    content_type: str
    size: int
    sha256: str
    bucket: str
    key: str
    version_id: str | None
    retention_class: str
    retain_until: datetime
    lock_mode: str
    legal_hold: bool
    legal_hold_reason: str | None
    signature_status: str
    archived_at: datetime
    fixity_status: str = "unchecked"  # unchecked | ok | failed
    fixity_checked_at: datetime | None = None
    # Active content found in a PDF (javascript, embedded_files, launch_action): shown to auditors.
    content_flags: tuple[str, ...] = ()

    @property
    def permanent(self) -> bool:
        return self.retention_class == PERMANENT


def change_legal_hold(record: Record, *, on: bool, reason: str | None) -> Record:
    """A reason is always required. A hold is an admin's decision only, never set by archiving (whatever
    the document's type or class), so an admin may always lift it again."""
    cleaned = (reason or "").strip()
    if not cleaned:
        raise MissingReason("a reason is required to set or lift a legal hold")
    return replace(record, legal_hold=on, legal_hold_reason=cleaned)
