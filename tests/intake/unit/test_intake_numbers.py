"""Number and notation (số và ký hiệu) parsing."""

import pytest
from intake.domain.errors import InvalidNumber
from intake.domain.numbers import notation_type_abbreviation, parse_number


@pytest.mark.parametrize(
    ("text", "number", "notation", "form"),
    [
        ("1393/CVT-CL", "1393", "CVT-CL", "state"),
        ("05/QĐ-UBND", "05", "QĐ-UBND", "state"),
        ("120/KH-BCĐ", "120", "KH-BCĐ", "state"),
        ("171-CV/BTGTU", "171", "CV/BTGTU", "party"),
        ("36-HD/VPTW", "36", "HD/VPTW", "party"),
        ("12/QyĐ-UBND", "12", "QyĐ-UBND", "state"),
        ("7/CTr-UBND", "7", "CTr-UBND", "state"),
        ("45/TTr-STTTT", "45", "TTr-STTTT", "state"),
        ("15/2020/TT-BTTTT", "15", "2020/TT-BTTTT", "state"),
        ("  Số: 1393 / CVT-CL ", "1393", "CVT-CL", "state"),
        ("9/QÐ-UBND", "9", "QĐ-UBND", "state"),  # Icelandic Ð typed for Đ
    ],
)
def test_parses_state_and_party_forms(text: str, number: str, notation: str, form: str) -> None:
    parsed = parse_number(text)
    assert (parsed.code_number, parsed.code_notation, parsed.form) == (number, notation, form)


def test_zero_padding_is_kept_for_display_but_not_significant() -> None:
    padded, plain = parse_number("05/QĐ-UBND"), parse_number("5/QĐ-UBND")
    assert padded.display == "05/QĐ-UBND"
    assert plain.display == "5/QĐ-UBND"
    assert padded.value == plain.value == 5
    assert padded.same_as(plain)
    assert not padded.same_as(parse_number("5/QĐ-SNV"))


def test_party_display_round_trips() -> None:
    assert parse_number("171-CV/BTGTU").display == "171-CV/BTGTU"


def test_decomposed_unicode_is_normalised_to_nfc() -> None:
    import unicodedata

    parsed = parse_number(unicodedata.normalize("NFD", "120/KH-BCĐ"))
    assert parsed.code_notation == "KH-BCĐ"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "1393",
        "/CVT-CL",
        "1393/",
        "1393/CVT--CL",
        "1393/CVT CL",
        "0/QĐ-UBND",
        "12/345",
        "1393/CVT-CL; DROP TABLE",
        "171-/BTGTU",
        "171-CV/",
        "123456789012/QĐ-UBND",
        "1/" + "A" * 31,
        "١٢/QĐ-UBND",
    ],
)
def test_refuses_garbage_with_a_message_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        parse_number(text)
    assert caught.value.field == "number"
    assert str(caught.value)


def test_type_abbreviation_comes_from_the_notation() -> None:
    assert notation_type_abbreviation(parse_number("120/KH-BCĐ")) == "KH"
    assert notation_type_abbreviation(parse_number("171-CV/BTGTU")) == "CV"
    assert notation_type_abbreviation(parse_number("15/2020/TT-BTTTT")) == "TT"
    assert notation_type_abbreviation(parse_number("88/UBND")) is None
