"""Validates every embedded PDF signature with pyHanko against the configured trust store."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from archive.domain.signatures import SignatureInfo, SignatureReport

log = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
# How far into a file the PDF header may sit behind leading whitespace and still be recognised.
_HEADER_WINDOW = 1024


def load_trust_roots(path: Path | None) -> list[Any]:
    """The PEM bundle's certificates (asn1crypto objects); no path or an empty file trusts nothing."""
    if path is None:
        return []
    from pyhanko.keys import load_certs_from_pemder_data

    data = path.read_bytes()
    if not data.strip():
        return []
    return list(load_certs_from_pemder_data(data))


def _signer_name(status: Any) -> str | None:
    try:
        subject = status.signing_cert.subject
        name = subject.native.get("common_name")
        return str(name) if name else str(subject.human_friendly)
    except (AttributeError, KeyError, ValueError):
        return None


class SignatureVerifier:
    """Reads a PDF (never writing to it) and reports on each signature it embeds."""

    def __init__(self, trust_roots: Sequence[Any], *, clock: Callable[[], datetime] | None = None) -> None:
        self._roots = list(trust_roots)
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_bundle(cls, path: Path | None) -> SignatureVerifier:
        return cls(load_trust_roots(path))

    def _context(self) -> Any:
        from pyhanko_certvalidator import ValidationContext

        # No revocation fetching: the archive runs without network access, and the report states
        # what was checked at archiving time (intact, trusted chain, coverage).
        return ValidationContext(trust_roots=self._roots, allow_fetching=False, revocation_mode="soft-fail")

    def warm_up(self) -> None:
        """Imports pyHanko and builds one validation context, so the first archived file does not pay it."""
        from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: F401 - imported for its side effect
        from pyhanko.sign.validation import validate_pdf_signature  # noqa: F401 - same

        self._context()

    def verify(self, data: bytes) -> SignatureReport:
        """The report for these bytes; a non-PDF or an unreadable PDF counts as unsigned with a note."""
        # A private copy: the validator works on its own buffer, the caller's bytes stay as they are.
        return self.verify_stream(io.BytesIO(bytes(data)))

    def verify_stream(self, stream: IO[bytes]) -> SignatureReport:
        """The report for a seekable binary stream the caller owns and no longer writes to; only read."""
        checked_at = self._clock()
        stream.seek(0)
        head = stream.read(_HEADER_WINDOW)
        stream.seek(0)
        if not head.lstrip()[:5].startswith(PDF_MAGIC):
            return SignatureReport(checked_at=checked_at, signatures=(), is_pdf=False, note="not a PDF")
        from pyhanko.pdf_utils.misc import PdfError
        from pyhanko.pdf_utils.reader import PdfFileReader

        try:
            reader = PdfFileReader(stream, strict=False)
            embedded = list(reader.embedded_signatures)
        except (PdfError, ValueError, KeyError, TypeError) as exc:
            return SignatureReport(checked_at=checked_at, signatures=(), note=f"unreadable PDF: {exc}")
        infos = [self._check_one(sig) for sig in embedded]
        return SignatureReport(checked_at=checked_at, signatures=tuple(infos))

    def _check_one(self, embedded: Any) -> SignatureInfo:
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko.sign.validation.status import SignatureCoverageLevel

        field_name = str(embedded.field_name)
        try:
            status = validate_pdf_signature(embedded, signer_validation_context=self._context())
        except Exception as exc:  # noqa: BLE001 - any validator failure means "not a valid signature"
            log.warning("signature %s could not be validated: %s", field_name, exc)
            return SignatureInfo(
                field_name=field_name,
                signer=None,
                signing_time=None,
                intact=False,
                valid=False,
                trusted=False,
                covers_whole_file=False,
                modification_ok=False,
                problems=(f"validation failed: {exc}",),
            )
        problems: list[str] = []
        if not status.intact:
            problems.append("the signed bytes were changed after signing")
        if not status.valid:
            problems.append("the cryptographic signature does not verify")
        if not status.trusted:
            problems.append("the signer's certificate does not chain to the trust store")
        covers = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        if not covers:
            problems.append("content was added after this signature (it does not cover the whole file)")
        # pyHanko's diff analysis: None means no judgment was possible, False means a forbidden change.
        modification_ok = status.docmdp_ok is not False and (
            status.coverage is not None and status.coverage >= SignatureCoverageLevel.ENTIRE_REVISION
        )
        if not modification_ok:
            problems.append("the document was modified in a way its signature does not allow")
        signing_time = status.signer_reported_dt
        if status.timestamp_validity is not None:
            signing_time = status.timestamp_validity.timestamp
        return SignatureInfo(
            field_name=field_name,
            signer=_signer_name(status),
            signing_time=signing_time,
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            covers_whole_file=covers,
            modification_ok=modification_ok,
            problems=tuple(problems),
        )
