"""NĐ 30 type abbreviations and names normalise to the name."""

import pytest
from intake.domain.document_types import ABBREVIATIONS, normalise_document_type, type_from_abbreviation
from intake.domain.errors import InvalidMetadata
from intake.domain.text import fold


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("KH", "Kế hoạch"),
        ("QĐ", "Quyết định"),
        ("qđ", "Quyết định"),
        ("QyĐ", "Quy định"),
        ("CTr", "Chương trình"),
        ("CT", "Chỉ thị"),
        ("HĐ", "Hợp đồng"),
        ("HD", "Hướng dẫn"),
        ("Kế hoạch", "Kế hoạch"),
        ("KẾ HOẠCH", "Kế hoạch"),
        ("  công   văn ", "Công văn"),
        ("Ke hoach", "Kế hoạch"),
        ("de an", "Đề án"),
        ("du an", "Dự án"),
    ],
)
def test_normalises_to_the_type_name(given: str, name: str) -> None:
    assert normalise_document_type(given) == name


def test_folded_names_are_unambiguous() -> None:
    names = set(ABBREVIATIONS.values())
    assert len({fold(n) for n in names}) == len(names)
    assert len({a.upper() for a in ABBREVIATIONS}) == len(ABBREVIATIONS)


def test_unknown_type_names_are_kept_tidied() -> None:
    assert normalise_document_type("thông tư  liên tịch") == "Thông tư liên tịch"


@pytest.mark.parametrize("given", ["", "   ", "XYZQ", "x" * 101])
def test_refuses_unknown_abbreviations_and_empty_names(given: str) -> None:
    with pytest.raises(InvalidMetadata) as caught:
        normalise_document_type(given)
    assert caught.value.field == "document_type"


def test_type_implied_by_a_notation() -> None:
    assert type_from_abbreviation("KH") == "Kế hoạch"
    assert type_from_abbreviation("CV") == "Công văn"
    assert type_from_abbreviation(None) == "Công văn"
    assert type_from_abbreviation("CVT") == "Công văn"
