"""Số và ký hiệu: parses numbers in the state form (`1393/CVT-CL`) and the Party form (`171-CV/BTGTU`)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from intake.domain.errors import InvalidNumber

# NĐ 30 letters: ASCII letters plus Đ/đ; lowercase occurs inside abbreviations such as QyĐ, CTr, TTr.
_GROUP = r"[0-9A-Za-zĐđ]+"
_NOTATION = rf"{_GROUP}(?:-{_GROUP})*"
_STATE = re.compile(rf"^(?P<number>[0-9]{{1,11}})/(?P<notation>(?:[0-9]{{4}}/)?{_NOTATION})$")
_PARTY = re.compile(rf"^(?P<number>[0-9]{{1,11}})-(?P<type>[A-Za-zĐđ]+)/(?P<agency>{_NOTATION})$")
# A leading "Số" / "Số:" is how the number is printed on paper; senders sometimes copy it along.
_PREFIX = re.compile(r"^s[ốo]\s*:?\s*", re.IGNORECASE)
_SPACES_AROUND_SEPARATORS = re.compile(r"\s*([/-])\s*")
MAX_NOTATION = 30
# Longest number text looked at: the regexes below never see more (40,000 spaces took seconds to refuse).
MAX_NUMBER_TEXT = 60

NumberForm = Literal["state", "party"]


@dataclass(frozen=True)
class DocumentNumber:
    """A parsed number: the digits as given (zero padding kept) and the notation (ký hiệu)."""

    code_number: str
    code_notation: str
    form: NumberForm

    @property
    def value(self) -> int:
        """Leading zeros are not significant: `05` and `5` are the same number."""
        return int(self.code_number)

    @property
    def display(self) -> str:
        if self.form == "party":
            return f"{self.code_number}-{self.code_notation}"
        return f"{self.code_number}/{self.code_notation}"

    def same_as(self, other: DocumentNumber) -> bool:
        return self.value == other.value and self.code_notation.casefold() == other.code_notation.casefold()

    def __str__(self) -> str:
        return self.display


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip()
    # The Icelandic Ð (U+00D0) and lowercase ð look like Đ/đ and are a common typing slip.
    text = text.replace("\u00d0", "Đ").replace("\u00f0", "đ")
    text = _PREFIX.sub("", text)
    return _SPACES_AROUND_SEPARATORS.sub(r"\1", text)


def parse_number(text: str) -> DocumentNumber:
    """Parses `1393/CVT-CL`, `05/QĐ-UBND`, `15/2020/TT-BTTTT`, `171-CV/BTGTU`; raises InvalidNumber."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidNumber("the number is required, e.g. 1393/CVT-CL or 171-CV/BTGTU")
    if len(text) > MAX_NUMBER_TEXT:
        raise InvalidNumber(f"longer than {MAX_NUMBER_TEXT} characters")
    cleaned = _clean(text)
    if match := _PARTY.match(cleaned):
        number = match["number"]
        notation = f"{match['type']}/{match['agency']}"
        form: NumberForm = "party"
    elif match := _STATE.match(cleaned):
        number = match["number"]
        notation = match["notation"]
        form = "state"
    else:
        raise InvalidNumber(
            f"{text.strip()[:40]!r} is neither a state-form number (số/ký hiệu, e.g. 1393/CVT-CL) "
            "nor a Party-form number (số-loại/cơ quan, e.g. 171-CV/BTGTU)"
        )
    if int(number) == 0:
        raise InvalidNumber("the number must be 1 or more")
    if not any(ch.isalpha() for ch in notation):
        raise InvalidNumber("the notation (ký hiệu) must contain letters, e.g. CVT-CL")
    if len(notation) > MAX_NOTATION:
        raise InvalidNumber(f"the notation (ký hiệu) is longer than {MAX_NOTATION} characters")
    return DocumentNumber(code_number=number, code_notation=notation, form=form)


def notation_type_abbreviation(number: DocumentNumber) -> str | None:
    """The type abbreviation a notation starts with (`KH` of `KH-BCĐ`, `CV` of `CV/BTGTU`), if it has one."""
    notation = number.code_notation
    if number.form == "party":
        return notation.split("/", 1)[0]
    if "/" in notation:  # `2020/TT-BTTTT`: the year comes first
        notation = notation.split("/", 1)[1]
    first = notation.split("-", 1)[0]
    return first if "-" in notation else None
