"""Attachment rules: allowed content types, no executables, content sniffing for PDFs, the upload size limit.

Every check looks at the file name as it will be stored (after sanitize_filename): `x.PDF ` and `x.pdf\\0`
are stored as `x.PDF` and `x.pdf`, so they are PDFs and their bytes must be one.
"""

from __future__ import annotations

from intake.domain.errors import AttachmentTooLarge, InvalidAttachment
from intake.domain.text import sanitize_filename

PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# What Vietnamese e-office systems send: signed PDFs, office documents, scans, archives of them, plain text
# and XML exchange documents. Anything a browser would render as a page (text/html, image/svg+xml, ...) is
# refused: attachments are later served back to clerks and auditors under the API's origin.
ALLOWED_CONTENT_TYPES = frozenset(
    {
        *PDF_TYPES,
        "application/octet-stream",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/rtf",
        "application/zip",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/xml",
        "text/xml",
        "text/plain",
        "text/csv",
        "image/jpeg",
        "image/png",
        "image/tiff",
    }
)
# Served in place of a stored type that is not (or no longer) allowed, e.g. rows registered before the list.
SAFE_FALLBACK_TYPE = "application/octet-stream"
MAX_CONTENT_TYPE = 100
# Magic numbers of programs: PE (Windows), ELF, Mach-O (32/64-bit, both byte orders, fat), scripts.
_EXECUTABLE_MAGIC = (
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "an ELF program"),
    (b"\xfe\xed\xfa\xce", "a Mach-O program"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O program"),
    (b"\xce\xfa\xed\xfe", "a Mach-O program"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O program"),
    (b"\xca\xfe\xba\xbe", "a Mach-O or Java program"),
    (b"#!", "a script"),
)
# Extensions a desktop runs on a double click, whatever the bytes are.
_EXECUTABLE_EXTENSIONS = frozenset(
    {
        "exe", "dll", "com", "scr", "msi", "msp", "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "js", "jse",
        "wsf", "wsh", "hta", "cpl", "jar", "sh", "bash", "lnk", "reg", "app", "apk", "elf", "run",
    }
)  # fmt: skip
# ISO 32000 lets the header sit anywhere in the first 1024 bytes; the trailer must be at the end,
# though some writers append a little garbage after %%EOF, hence the tail window.
HEADER_WINDOW = 1024
TRAILER_WINDOW = 2048


def normalise_content_type(value: str | None, *, field: str) -> str:
    """The bare, lower-case media type if it is allowed; raises InvalidAttachment naming `field` otherwise."""
    text = (value or "").strip() or SAFE_FALLBACK_TYPE
    if len(text) > MAX_CONTENT_TYPE or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidAttachment("the content type is not a valid media type", field=f"{field}.content_type")
    media = text.split(";", 1)[0].strip().lower()
    if media not in ALLOWED_CONTENT_TYPES:
        raise InvalidAttachment(
            f"{media[:60]!r} is not an accepted attachment type; send PDF, office documents, images, "
            "plain text, XML or archives of them",
            field=f"{field}.content_type",
        )
    return media


def served_content_type(stored: str) -> str:
    """The type to answer a download with: the stored one if it is allowed, a neutral one otherwise."""
    media = stored.split(";", 1)[0].strip().lower()
    return media if media in ALLOWED_CONTENT_TYPES else SAFE_FALLBACK_TYPE


def _extension(stored_name: str) -> str:
    # Windows ignores trailing dots and spaces: `x.pdf.` opens as `x.pdf`.
    stem, dot, ext = stored_name.rstrip(". ").rpartition(".")
    return ext.lower() if dot and stem else ""


def declares_pdf(filename: str, content_type: str) -> bool:
    """True when the stored name ends in .pdf or the type is a PDF type (both after cleaning)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in PDF_TYPES or _extension(sanitize_filename(filename)) == "pdf"


def looks_like_pdf(head: bytes, tail: bytes) -> bool:
    return b"%PDF-" in head[:HEADER_WINDOW] and b"%%EOF" in tail[-TRAILER_WINDOW:]


def executable_kind(filename: str, head: bytes) -> str | None:
    """What kind of program the file is, by its magic number or by its stored name, or None."""
    for magic, kind in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return kind
    if _extension(sanitize_filename(filename)) in _EXECUTABLE_EXTENSIONS:
        return "a program or script by its file name"
    return None


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
    if (kind := executable_kind(filename, head)) is not None:
        raise InvalidAttachment(f"{stored_name!r} is {kind}; programs are not accepted", field=field)
    if declares_pdf(filename, media) and not looks_like_pdf(head, tail):
        raise InvalidAttachment(
            f"{stored_name!r} is declared as a PDF but its bytes are not a PDF "
            "(no %PDF- header or %%EOF trailer)",
            field=field,
        )
    return media
