"""What the archive accepts (content types, PDF and program sniffing, sizes); PDF active-content flags.

The accepted types and the sniffing are intake's (`attachment_rules`): the archive trusts no event blindly,
so it applies the very rules intake applied to the upload, and words its own refusals."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from attachment_rules import (
    ACCEPTED_CONTENT_TYPES,
    FALLBACK_CONTENT_TYPE,
    looks_like_pdf,
    media_type,
    program_kind,
)

# Re-exported for the archiving use case, which reads the file's first and last bytes.
from attachment_rules import HEADER_WINDOW as HEADER_WINDOW
from attachment_rules import TRAILER_WINDOW as TRAILER_WINDOW
from attachment_rules import declares_pdf as declares_pdf

_TOKEN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*$")


class Refused(ValueError):
    """A file the archive does not keep; the message says why."""


def normalise_content_type(content_type: str | None) -> str:
    """The media type alone, lower case ("Application/PDF; x=1" → "application/pdf"); Refused if malformed."""
    raw = media_type(content_type or "")
    if not raw:
        return FALLBACK_CONTENT_TYPE
    if not _TOKEN.match(raw):
        raise Refused(f"content type {content_type!r} is not a media type")
    return raw


def served_type(content_type: str) -> str:
    """The type a record's bytes are served with: its own if accepted, else a download never rendered."""
    try:
        normal = normalise_content_type(content_type)
    except Refused:
        return FALLBACK_CONTENT_TYPE
    return normal if normal in ACCEPTED_CONTENT_TYPES else FALLBACK_CONTENT_TYPE


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
    if (kind := program_kind(filename, head)) is not None:
        raise Refused(f"the file is {kind}")
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
