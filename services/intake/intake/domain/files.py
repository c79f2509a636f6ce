"""Attachment rules: content sniffing for declared PDFs and the upload size limit."""

from __future__ import annotations

from intake.domain.errors import AttachmentTooLarge, InvalidAttachment

PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# ISO 32000 lets the header sit anywhere in the first 1024 bytes; the trailer must be at the end,
# though some writers append a little garbage after %%EOF, hence the tail window.
_HEADER_WINDOW = 1024
_TRAILER_WINDOW = 2048


def declares_pdf(filename: str, content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in PDF_TYPES or filename.lower().endswith(".pdf")


def looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:_HEADER_WINDOW] and b"%%EOF" in data[-_TRAILER_WINDOW:]


def check_attachment(*, field: str, filename: str, content_type: str, data: bytes, max_bytes: int) -> None:
    """Raises AttachmentTooLarge or InvalidAttachment naming `field` (e.g. `files[0]`)."""
    if len(data) > max_bytes:
        raise AttachmentTooLarge(
            f"{filename!r} is {len(data)} bytes; the limit is {max_bytes} bytes", field=field
        )
    if not data:
        raise InvalidAttachment(f"{filename!r} is empty", field=field)
    if declares_pdf(filename, content_type) and not looks_like_pdf(data):
        raise InvalidAttachment(
            f"{filename!r} is declared as a PDF but its bytes are not a PDF "
            "(no %PDF- header or %%EOF trailer)",
            field=field,
        )
