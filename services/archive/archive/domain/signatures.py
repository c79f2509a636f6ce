"""The signature report model: what was found per embedded signature and the report's bottom line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class BottomLine(StrEnum):
    """valid: every signature intact, trusted, covering the file; invalid: at least one is broken;
    untrusted: intact but not chaining to the trust store; unsigned: no signature (or not a PDF)."""

    VALID = "valid"
    INVALID = "invalid"
    UNTRUSTED = "untrusted"
    UNSIGNED = "unsigned"


@dataclass(frozen=True)
class SignatureInfo:
    """One embedded signature as the validator saw it."""

    field_name: str
    signer: str | None
    signing_time: datetime | None
    intact: bool
    valid: bool
    trusted: bool
    covers_whole_file: bool
    modification_ok: bool = True
    problems: Sequence[str] = field(default_factory=tuple)

    @property
    def broken(self) -> bool:
        """Cryptographically or structurally wrong, whatever the trust."""
        return not (self.intact and self.valid and self.modification_ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "field_name": self.field_name,
            "signer": self.signer,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "covers_whole_file": self.covers_whole_file,
            "modification_ok": self.modification_ok,
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureInfo:
        when = data.get("signing_time")
        return cls(
            field_name=str(data.get("field_name", "")),
            signer=data.get("signer"),
            signing_time=datetime.fromisoformat(when) if when else None,
            intact=bool(data.get("intact")),
            valid=bool(data.get("valid")),
            trusted=bool(data.get("trusted")),
            covers_whole_file=bool(data.get("covers_whole_file")),
            modification_ok=bool(data.get("modification_ok", True)),
            problems=tuple(data.get("problems", ())),
        )


def bottom_line(signatures: Sequence[SignatureInfo]) -> BottomLine:
    """Worst case wins: a broken signature makes the document invalid even if another one is fine."""
    if not signatures:
        return BottomLine.UNSIGNED
    if any(sig.broken for sig in signatures):
        return BottomLine.INVALID
    if not all(sig.trusted for sig in signatures):
        return BottomLine.UNTRUSTED
    return BottomLine.VALID


@dataclass(frozen=True)
class SignatureReport:
    """Every signature of one document, when it was checked and against which trust store."""

    checked_at: datetime
    signatures: Sequence[SignatureInfo]
    is_pdf: bool = True
    note: str | None = None

    @property
    def bottom_line(self) -> BottomLine:
        return bottom_line(self.signatures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bottom_line": self.bottom_line.value,
            "checked_at": self.checked_at.isoformat(),
            "is_pdf": self.is_pdf,
            "note": self.note,
            "signatures": [sig.to_dict() for sig in self.signatures],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureReport:
        return cls(
            checked_at=datetime.fromisoformat(str(data["checked_at"])),
            signatures=tuple(SignatureInfo.from_dict(s) for s in data.get("signatures", ())),
            is_pdf=bool(data.get("is_pdf", True)),
            note=data.get("note"),
        )
