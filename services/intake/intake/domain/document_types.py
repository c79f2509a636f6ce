"""Tên loại văn bản: NĐ 30/2020 Phụ lục III abbreviations and names; normalises either to the name."""

from __future__ import annotations

from intake.domain.errors import InvalidMetadata
from intake.domain.text import collapse, fold

# NĐ 30/2020/NĐ-CP Phụ lục III, plus CV (Party bodies' công văn, HD 36-HD/VPTW) and KL (Party kết luận).
ABBREVIATIONS: dict[str, str] = {
    "NQ": "Nghị quyết",
    "QĐ": "Quyết định",
    "CT": "Chỉ thị",
    "QC": "Quy chế",
    "QyĐ": "Quy định",
    "TC": "Thông cáo",
    "TB": "Thông báo",
    "HD": "Hướng dẫn",
    "CTr": "Chương trình",
    "KH": "Kế hoạch",
    "PA": "Phương án",
    "ĐA": "Đề án",
    "DA": "Dự án",
    "BC": "Báo cáo",
    "BB": "Biên bản",
    "TTr": "Tờ trình",
    "HĐ": "Hợp đồng",
    "CĐ": "Công điện",
    "BGN": "Bản ghi nhớ",
    "BTT": "Bản thỏa thuận",
    "GUQ": "Giấy ủy quyền",
    "GM": "Giấy mời",
    "GGT": "Giấy giới thiệu",
    "GNP": "Giấy nghỉ phép",
    "PG": "Phiếu gửi",
    "PC": "Phiếu chuyển",
    "PB": "Phiếu báo",
    "SY": "Bản sao y",
    "TrS": "Bản trích sao",
    "SL": "Bản sao lục",
    "CV": "Công văn",
    "KL": "Kết luận",
}
CONG_VAN = "Công văn"
MAX_TYPE_NAME = 100

_BY_ABBREVIATION = {abbr.upper(): name for abbr, name in ABBREVIATIONS.items()}
_BY_NAME = {collapse(name).casefold(): name for name in ABBREVIATIONS.values()}
# Folded names are unique in the table (checked by a test), so an unaccented "ke hoach" is unambiguous.
_BY_FOLDED_NAME = {fold(name): name for name in ABBREVIATIONS.values()}


def _looks_like_abbreviation(text: str) -> bool:
    return " " not in text and len(text) <= 5 and sum(ch.isupper() for ch in text) >= 2


def normalise_document_type(value: str) -> str:
    """`KH`, `kế hoạch`, `KẾ HOẠCH`, `Ke hoach` -> `Kế hoạch`; other names are kept (tidied)."""
    text = collapse(value)
    if not text:
        raise InvalidMetadata("the document type must not be empty", field="document_type")
    if len(text) > MAX_TYPE_NAME:
        raise InvalidMetadata(
            f"the document type is longer than {MAX_TYPE_NAME} characters", field="document_type"
        )
    if (name := _BY_ABBREVIATION.get(text.upper())) is not None:
        return name
    if (name := _BY_NAME.get(text.casefold())) is not None:
        return name
    if (name := _BY_FOLDED_NAME.get(fold(text))) is not None:
        return name
    if _looks_like_abbreviation(text):
        raise InvalidMetadata(
            f"{text!r} is not an NĐ 30 type abbreviation (e.g. QĐ, KH, TB, CTr); give the type name instead",
            field="document_type",
        )
    # Types outside the table (Party and sector-specific ones) are legitimate: keep the sender's wording.
    return text[0].upper() + text[1:]


def type_from_abbreviation(abbreviation: str | None) -> str:
    """The type a notation implies: `KH` -> Kế hoạch; no abbreviation (state công văn) -> Công văn."""
    if abbreviation is None:
        return CONG_VAN
    return _BY_ABBREVIATION.get(abbreviation.upper(), CONG_VAN)
