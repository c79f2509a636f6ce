"""Vietnamese text helpers: NFC normalisation, diacritics folding for search, safe file names."""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
_UNSAFE_IN_NAME = re.compile(r'[<>:"|?*\\/]')
MAX_FILENAME_BYTES = 200


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def collapse(text: str) -> str:
    """NFC with runs of whitespace reduced to one space and the ends trimmed."""
    return _WS.sub(" ", nfc(text)).strip()


def fold(text: str) -> str:
    """Lower-case, accent-free form for search: `Thực phẩm` -> `thuc pham`, `Đề án` -> `de an`."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WS.sub(" ", stripped.casefold()).strip()


def sanitize_filename(name: str, *, fallback: str = "attachment") -> str:
    """A storable file name: last path component only, no control or reserved characters, NFC kept.

    Vietnamese letters survive (`Công văn 1393.pdf` stays as it is); `../../etc/passwd` becomes `passwd`.
    """
    text = nfc(name or "").replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    # Cc/Cf are control and invisible formatting characters (incl. NUL and bidi overrides used to spoof).
    text = "".join(ch for ch in text if unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"})
    text = _UNSAFE_IN_NAME.sub("_", text)
    text = _WS.sub(" ", text).strip().lstrip(".").strip()
    if not text or set(text) <= {".", "_", " "}:
        text = fallback
    if len(text.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        suffix = f".{ext}" if dot and 0 < len(ext) <= 10 else ""
        base = stem if suffix else text
        while len((base + suffix).encode("utf-8")) > MAX_FILENAME_BYTES:
            base = base[:-1]
        text = base.rstrip() + suffix
    return text
