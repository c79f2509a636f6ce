"""Attachment rules: accepted content types, no programs, content sniffing for PDFs, the upload size limit.
The types, the PDF and program sniffing are the archive's too (`attachment_rules`); the wording is intake's.

Every check looks at the file name as it will be stored (after sanitize_filename): `x.PDF ` and `x.pdf\\0`
are stored as `x.PDF` and `x.pdf`, so they are PDFs and their bytes must be one.
"""

from __future__ import annotations

from attachment_rules import (
    ACCEPTED_CONTENT_TYPES,
    FALLBACK_CONTENT_TYPE,
    declares_pdf,
    looks_like_pdf,
    media_type,
    program_kind,
)

from intake.domain.errors import AttachmentTooLarge, InvalidAttachment
from intake.domain.text import sanitize_filename

MAX_CONTENT_TYPE = 100


def normalise_content_type(value: str | None, *, field: str) -> str:
    """The bare, lower-case media type if it is accepted; InvalidAttachment naming `field` otherwise."""
    text = (value or "").strip() or FALLBACK_CONTENT_TYPE
    if len(text) > MAX_CONTENT_TYPE or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidAttachment("the content type is not a valid media type", field=f"{field}.content_type")
    media = media_type(text)
    if media not in ACCEPTED_CONTENT_TYPES:
        raise InvalidAttachment(
            f"{media[:60]!r} is not an accepted attachment type; send PDF, office documents, images, "
            "plain text, XML or archives of them",
            field=f"{field}.content_type",
        )
    return media


def served_content_type(stored: str) -> str:
    """The type to answer a download with: the stored one if it is accepted, a neutral one otherwise."""
    media = media_type(stored)
    return media if media in ACCEPTED_CONTENT_TYPES else FALLBACK_CONTENT_TYPE


def check_attachment(
    *,
    field: str,
    filename: str,
    content_type: str,
    size: int,
    head: bytes,
    tail: bytes,
    max_bytes: int,
) -> str:
    """Checks one file from its size, first and last bytes; returns the content type to store.

    Raises AttachmentTooLarge or InvalidAttachment naming `field` (e.g. `files[0]`).
    """
    stored_name = sanitize_filename(filename)
    if size > max_bytes:
        raise AttachmentTooLarge(
            f"{stored_name!r} is {size} bytes; the limit is {max_bytes} bytes", field=field
        )
    if size == 0:
        raise InvalidAttachment(f"{stored_name!r} is empty", field=field)
    media = normalise_content_type(content_type, field=field)
    if (kind := program_kind(stored_name, head)) is not None:
        raise InvalidAttachment(f"{stored_name!r} is {kind}; programs are not accepted", field=field)
    if declares_pdf(stored_name, media) and not looks_like_pdf(head, tail):
        raise InvalidAttachment(
            f"{stored_name!r} is declared as a PDF but its bytes are not a PDF "
            "(no %PDF- header or %%EOF trailer)",
            field=field,
        )
    return media
