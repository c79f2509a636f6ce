"""One file-name cleaner for every service: a sender's file name becomes one safe to store and show."""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME_BYTES = 200
# Path separators, quotes and the characters Windows refuses in names; each becomes "_".
_RESERVED = re.compile(r'[<>:"\'|?*\\/`]')
_SPACES = re.compile(r"\s+")
# Control, invisible-format (bidi overrides used to disguise an extension), line and paragraph separators.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def clean_filename(name: str | None, *, fallback: str = "attachment") -> str:
    """The last path component, NFC, without control characters, quotes or reserved characters, no leading
    or trailing dots or spaces, at most 200 UTF-8 bytes with the extension kept.

    Vietnamese letters are kept as they are ("Công văn 1393.pdf" is unchanged); "../../etc/passwd" becomes
    "passwd", "x.PDF " becomes "x.PDF", "a\\r\\nb.pdf" becomes "ab.pdf", and a name with nothing left is
    `fallback`.
    """
    text = unicodedata.normalize("NFC", name or "").replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    text = _RESERVED.sub("_", text)
    text = _SPACES.sub(" ", text).strip(" .")
    if not text or set(text) <= {".", "_", " "}:
        text = fallback
    if len(text.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        suffix = f".{ext}" if dot and 0 < len(ext) <= 10 else ""
        base = stem if suffix else text
        while base and len((base + suffix).encode("utf-8")) > MAX_FILENAME_BYTES:
            base = base[:-1]
        text = (base.rstrip(" .") or fallback) + suffix
    return text
