"""Metadata rules (confidentiality refusal, identifiers, dates) and the arrival numbering rule."""

from datetime import UTC, date, datetime

import pytest
from intake.domain.arrival import arrival_date, arrival_series, next_arrival_number
from intake.domain.enums import Confidentiality, Urgency
from intake.domain.errors import InvalidMetadata, InvalidNumber, StateSecretRefused
from intake.domain.models import new_metadata


def meta(**overrides: object):
    values: dict[str, object] = {
        "issuer_name": "Cục Viễn thông",
        "number": "1393/CVT-CL",
        "issued_date": date(2021, 4, 8),
        "subject": "V/v phối hợp, hỗ trợ",
    }
    values.update(overrides)
    return new_metadata(**values)  # type: ignore[arg-type]


def test_defaults_and_inferred_type() -> None:
    m = meta()
    assert m.urgency is Urgency.THUONG
    assert m.confidentiality is Confidentiality.THUONG
    assert m.document_type == "Công văn"
    assert meta(number="120/KH-BCĐ").document_type == "Kế hoạch"
    assert meta(number="120/KH-BCĐ", document_type="TB").document_type == "Thông báo"


@pytest.mark.parametrize("level", ["mat", "toi_mat", "tuyet_mat"])
def test_state_secrets_are_refused_with_the_reason(level: str) -> None:
    with pytest.raises(StateSecretRefused) as caught:
        meta(confidentiality=level)
    assert caught.value.field == "confidentiality"
    assert "bí mật nhà nước" in str(caught.value)
    assert "QCVN 102" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"issuer_name": "  "}, "issuer.name"),
        ({"issuer_code": "000.00.00.g22"}, "issuer.code"),
        ({"issuer_code": "X" * 36}, "issuer.code"),
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 501}, "subject"),
        ({"urgency": "rat_khan"}, "urgency"),
        ({"confidentiality": "secret"}, "confidentiality"),
        ({"due_date": date(2021, 4, 1)}, "due_date"),
        ({"page_amount": 0}, "page_amount"),
        ({"to_places": ["x" * 1001]}, "to_places"),
    ],
)
def test_refusals_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidMetadata) as caught:
        meta(**overrides)
    assert caught.value.field == field


def test_bad_number_is_refused() -> None:
    with pytest.raises(InvalidNumber):
        meta(number="not a number")


def test_duplicate_key_compares_numbers_numerically() -> None:
    a = meta(number="05/QĐ-UBND", issuer_name="UBND tỉnh Bình Phước")
    b = meta(number="5/qđ-ubnd", issuer_name="ubnd  tỉnh bình phước")
    c = meta(number="5/QĐ-UBND", issuer_name="UBND tỉnh Bình Phước", issued_date=date(2021, 4, 9))
    assert a.duplicate_key == b.duplicate_key
    assert a.duplicate_key != c.duplicate_key


def test_agency_code_is_kept() -> None:
    assert meta(issuer_code="000.00.00.G22").issuer.code == "000.00.00.G22"


def test_arrival_day_is_the_day_in_vietnam() -> None:
    # 23:30 UTC on 31 December is 06:30 on 1 January in Hà Nội: a new series.
    late = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert arrival_date(late) == date(2026, 1, 1)
    assert arrival_series("STTTT", late).year == 2026
    assert arrival_series("STTTT", datetime(2025, 12, 31, 16, 59, tzinfo=UTC)).year == 2025
    with pytest.raises(ValueError):
        arrival_date(datetime(2025, 1, 1))


def test_numbers_start_at_one_and_never_skip() -> None:
    assert next_arrival_number(None) == 1
    assert next_arrival_number(41) == 42
