"""What a document file may be, judged alike by intake (on upload) and the archive (before it keeps a copy):
the accepted media types, what a PDF looks like, what a program looks like.

Pure rules, no I/O and nothing else of docroute's, so each service's domain layer may import them (the
domains may not import `shared`); each service words its own refusals. Names passed in are the names as
stored, after the service's cleaner: `x.PDF ` and `x.pdf\\0` are stored as `x.PDF` and `x.pdf`.
"""

from __future__ import annotations

PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# What Vietnamese e-office systems send and a public body keeps: signed PDFs, office documents, scans,
# archives of them, plain text and XML exchange documents. Anything a browser would render as a page
# (text/html, image/svg+xml, ...) is refused: files are served back to clerks and auditors under the APIs'
# origins, and the archive keeps them for decades. application/octet-stream is what a sender that names no
# type gets; it is sniffed like the rest.
ACCEPTED_CONTENT_TYPES = frozenset(
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
# The type a file without one gets, and the one a stored type that is not (or no longer) accepted is served
# as: a download no browser renders.
FALLBACK_CONTENT_TYPE = "application/octet-stream"
# ISO 32000 lets the header sit anywhere in the first 1024 bytes; the trailer must be at the end, though some
# writers append a little garbage after %%EOF, hence the tail window.
HEADER_WINDOW = 1024
TRAILER_WINDOW = 2048
# Magic numbers of programs: PE (Windows/DOS), ELF, Mach-O (32/64-bit, both byte orders, fat), scripts.
_PROGRAM_MAGIC = (
    (b"MZ", "a Windows/DOS executable (MZ header)"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"#!", "a script with an interpreter line"),
)
# Extensions a desktop runs (or installs, or loads) on a double click, whatever the bytes are.
PROGRAM_EXTENSIONS = frozenset(
    {
        "exe", "dll", "com", "scr", "msi", "msp", "cpl", "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "js",
        "jse", "wsf", "wsh", "hta", "jar", "apk", "sh", "bash", "lnk", "app", "dmg", "pif", "reg", "elf",
        "so", "run",
    }
)  # fmt: skip


def media_type(content_type: str) -> str:
    """The bare, lower-case media type of a Content-Type ("Application/PDF; x=1" → "application/pdf")."""
    return content_type.split(";", 1)[0].strip().lower()


def extension(stored_name: str) -> str:
    """The lower-case extension a desktop would go by; Windows ignores trailing dots and spaces (`x.pdf.`
    opens as `x.pdf`), and a name that is all extension (`.pdf`) has none."""
    stem, dot, ext = stored_name.rstrip(". ").rpartition(".")
    return ext.lower() if dot and stem else ""


def declares_pdf(stored_name: str, content_type: str) -> bool:
    """True when the type is a PDF type or the name ends in .pdf: the bytes must then be a PDF."""
    return media_type(content_type) in PDF_TYPES or extension(stored_name) == "pdf"


def looks_like_pdf(head: bytes, tail: bytes) -> bool:
    """The file's first and last bytes hold a PDF header and trailer."""
    return b"%PDF-" in head[:HEADER_WINDOW] and b"%%EOF" in tail[-TRAILER_WINDOW:]


def program_kind(stored_name: str, head: bytes) -> str | None:
    """What kind of program the file is, by its magic number or else by its name, or None."""
    for magic, kind in _PROGRAM_MAGIC:
        if head.startswith(magic):
            return kind
    ext = extension(stored_name)
    if ext in PROGRAM_EXTENSIONS:
        return f"a program or script: its name ends in .{ext}"
    return None
