"""Text folding for matching: case-insensitive and Vietnamese-diacritics-insensitive comparison."""

from __future__ import annotations

import re
import unicodedata

# đ/Đ are letters of their own, not d + a combining mark, so NFD leaves them alone.
_SPECIAL = str.maketrans({"đ": "d", "Đ": "d"})
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def nfc(text: str) -> str:
    """The NFC form with collapsed whitespace; what `exact` and `regex` compare against."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def fold(text: str) -> str:
    """Casefold, strip diacritics (đ→d) and collapse whitespace: "An toàn Thực phẩm" → "an toan thuc pham"."""
    decomposed = unicodedata.normalize("NFD", text.translate(_SPECIAL).casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACE.sub(" ", stripped.translate(_SPECIAL)).strip()


def words(text: str) -> list[str]:
    """The folded words of a text, punctuation dropped; hyphenated words stay whole ("i-speed")."""
    return _WORD.findall(fold(text))
