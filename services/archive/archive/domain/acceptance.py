"""What the archive accepts (content types, PDF and executable sniffing, sizes); PDF active-content flags."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# The types a public body's documents and unit reports come in: the list intake accepts uploads from (keep
# the two in step; services share no code for business rules). Anything else is refused: the archive keeps
# records for decades and serves them back to auditors, so what it holds must be a document, not a page or
# a program. application/octet-stream is what a sender that names no type gets; it is sniffed like the rest.
ACCEPTED_CONTENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/x-pdf",
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
        # Archives of documents, as intake accepts them (the archive keeps them as received).
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
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# As intake: the header may sit in the first 1024 bytes, the trailer near the end.
HEADER_WINDOW = 1024
TRAILER_WINDOW = 2048
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*$")
_EXECUTABLE_MAGIC = (
    (b"MZ", "a Windows/DOS executable (MZ header)"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"#!", "a script with an interpreter line"),
)
_EXECUTABLE_SUFFIXES = frozenset(
    {
        "exe", "dll", "com", "scr", "msi", "msp", "cpl", "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "js",
        "jse", "wsf", "wsh", "hta", "jar", "apk", "sh", "bash", "lnk", "app", "dmg", "pif", "reg", "elf",
        "so", "run",
    }
)  # fmt: skip


class Refused(ValueError):
    """A file the archive does not keep; the message says why."""


def normalise_content_type(content_type: str | None) -> str:
    """The media type alone, lower case ("Application/PDF; x=1" → "application/pdf"); Refused if malformed."""
    raw = (content_type or "").split(";", 1)[0].strip().lower()
    if not raw:
        return DEFAULT_CONTENT_TYPE
    if not _TOKEN.match(raw):
        raise Refused(f"content type {content_type!r} is not a media type")
    return raw


def served_type(content_type: str) -> str:
    """The type a record's bytes are served with: its own if accepted, else a download never rendered."""
    try:
        normal = normalise_content_type(content_type)
    except Refused:
        return DEFAULT_CONTENT_TYPE
    return normal if normal in ACCEPTED_CONTENT_TYPES else DEFAULT_CONTENT_TYPE


def declares_pdf(filename: str, content_type: str) -> bool:
    return content_type in PDF_TYPES or filename.lower().endswith(".pdf")


def looks_like_pdf(head: bytes, tail: bytes) -> bool:
    return b"%PDF-" in head[:HEADER_WINDOW] and b"%%EOF" in tail[-TRAILER_WINDOW:]


def check_acceptable(
    *,
    filename: str,
    content_type: str,
    announced_size: int,
    stored_size: int,
    max_bytes: int,
    head: bytes,
    tail: bytes,
) -> str:
    """The normalised content type of an acceptable file; Refused naming the first rule it breaks.

    `filename` is the cleaned name (the rules look at what will be stored, never at the raw name: "x.PDF "
    and "x.pdf\\0" both end in ".pdf" once cleaned). `head` and `tail` are the first and last bytes.
    """
    normal = normalise_content_type(content_type)
    if stored_size != announced_size:
        raise Refused(f"the event announced {announced_size} bytes, the stored file has {stored_size}")
    if stored_size > max_bytes:
        raise Refused(f"{stored_size} bytes; the archive's limit is {max_bytes}")
    if stored_size == 0:
        raise Refused("the file is empty")
    for magic, what in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            raise Refused(f"the file is {what}")
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in _EXECUTABLE_SUFFIXES:
        raise Refused(f"the name ends in .{suffix}, an executable or script type")
    if normal not in ACCEPTED_CONTENT_TYPES:
        raise Refused(f"content type {normal} is not one the archive accepts")
    if declares_pdf(filename, normal) and not looks_like_pdf(head, tail):
        raise Refused("declared as a PDF but its bytes are not a PDF (no %PDF- header or %%EOF trailer)")
    return normal


# --- active content in PDFs --------------------------------------------------------------------------

JAVASCRIPT = "javascript"
EMBEDDED_FILES = "embedded_files"
LAUNCH_ACTION = "launch_action"
_FLAG_OF_NAME = {
    b"JavaScript": JAVASCRIPT,
    b"JS": JAVASCRIPT,
    b"EmbeddedFile": EMBEDDED_FILES,
    b"EmbeddedFiles": EMBEDDED_FILES,
    b"Launch": LAUNCH_ACTION,
}
_NAME = re.compile(rb"/([A-Za-z0-9#]{2,40})")
_HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_FLATE_STREAM = re.compile(rb"/FlateDecode.{0,300}?stream\r?\n", re.DOTALL)
# Decompressed bytes examined per file: bounds the work a compression bomb can cause.
MAX_INFLATED = 64 * 1024 * 1024


@dataclass(frozen=True)
class ActiveContent:
    """What a PDF carries besides pages: script, files inside it, actions that start programs."""

    flags: tuple[str, ...]
    note: str | None = None


def _names(data: bytes) -> Iterable[bytes]:
    for match in _NAME.finditer(data):
        name = match.group(1)
        if b"#" in name:  # "/J#61vaScript" is "/JavaScript" to a PDF reader
            name = _HEX_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), name)
        yield name


def _inflated_streams(data: bytes, budget: int) -> tuple[list[bytes], bool]:
    """The Flate-compressed streams' contents (object streams hide dictionaries there), within a budget."""
    out: list[bytes] = []
    for match in _FLATE_STREAM.finditer(data):
        inflater = zlib.decompressobj()
        try:
            chunk = inflater.decompress(data[match.end() : match.end() + budget * 4], budget)
        except zlib.error:
            continue
        budget -= len(chunk)
        out.append(chunk)
        if budget <= 0:
            return out, True
    return out, False


def scan_pdf(data: bytes) -> ActiveContent:
    """The active-content flags of a PDF's bytes, looking into compressed streams too (within a budget)."""
    found: set[str] = set()
    inflated, truncated = _inflated_streams(data, MAX_INFLATED)
    for part in (data, *inflated):
        for name in _names(part):
            flag = _FLAG_OF_NAME.get(name)
            if flag is not None:
                found.add(flag)
    note = "compressed streams beyond the inspection budget were not examined" if truncated else None
    return ActiveContent(flags=tuple(sorted(found)), note=note)
