"""shared.json_bytes writes the standard library's compact, unescaped UTF-8 JSON, byte for byte."""

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared.db import _json_value, json_rows
from shared.envelope import Envelope

from shared import json_bytes


def standard(value: Any, default: Any = None) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default).encode("utf-8")


# Any JSON value the standard library can write as JSON: every Unicode text (no lone surrogates), finite
# floats, integers of any size, nested lists and objects.
text = st.text(st.characters(exclude_categories=["Cs"]))
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text
values = st.recursive(leaves, lambda inner: st.lists(inner) | st.dictionaries(text, inner), max_leaves=30)


@settings(max_examples=600)
@given(values)
def test_any_json_value_is_written_byte_for_byte_as_the_standard_library_writes_it(value: Any) -> None:
    assert json_bytes.dumps(value) == standard(value)


@pytest.mark.parametrize(
    "value",
    [
        1e-05,
        1e16,
        -7.1850441006303285e-09,
        123456789012345680.0,
        {"ratio": 0.00001, "n": [1e22, 2.5, -0.0]},
        2**70,
        {"n": -(2**64)},
        {1: "an int key", None: "a None key"},
        'Tuyên truyền \u2028\u2029 \x00\x1f\x7f "\\ / 𝄞',
        {"Phòng Văn hóa và Thông tin": ["Sở Y tế", "Báo chí"]},
        [],
        {},
        "",
        0,
        True,
    ],
)
def test_values_orjson_spells_differently_or_refuses_come_out_as_the_standard_library_writes_them(
    value: Any,
) -> None:
    assert json_bytes.dumps(value) == standard(value)


def test_a_string_that_looks_like_a_float_stays_a_string() -> None:
    value = {"note": 'x":1.5}', "at": "02:45:00.123456+00:00"}
    assert json_bytes.dumps(value) == standard(value)


def test_default_writes_what_json_does_not_know_and_datetimes_keep_isoformat() -> None:
    row = {
        "created_at": datetime(2026, 12, 5, 2, 45, 0, 123456, tzinfo=UTC),
        "at_hanoi": datetime(2026, 12, 5, 9, 45, tzinfo=timezone(timedelta(hours=7))),
        "naive": datetime(2026, 12, 5, 2, 45),
        "due": date(2026, 12, 31),
        "body": b"\x00\xff{}",
    }
    assert json_bytes.dumps(row, default=_json_value) == standard(row, default=_json_value)
    assert json.loads(json_rows([row]))[0]["body"] == "\\x00ff7b7d"


def test_str_enums_are_written_by_value() -> None:
    class Status(StrEnum):
        ASSIGNED = "assigned"

    assert json_bytes.dumps({"status": Status.ASSIGNED}) == standard({"status": Status.ASSIGNED})


def test_what_neither_can_write_fails_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        json_bytes.dumps({"x": "\ud800"})
    with pytest.raises(TypeError):
        json_bytes.dumps({"x": object()})
    with pytest.raises(TypeError):
        json_bytes.dumps({"x": object()}, default=_json_value)


def test_a_non_finite_float_is_written_as_the_standard_library_writes_it() -> None:
    assert json_bytes.dumps([math.nan, {"x": -math.inf}]) == standard([math.nan, {"x": -math.inf}])


def test_an_envelope_is_the_bytes_it_was_before() -> None:
    envelope = Envelope.new(
        "routing.task_offered",
        {"id": "t-1", "unit": "PVHTT.ĐỒNGXOÀI", "title": "Tuyên truyền an toàn thực phẩm", "n": 21},
        producer="routing",
    )
    assert envelope.to_bytes() == standard(envelope.to_dict())
    assert Envelope.from_bytes(envelope.to_bytes()) == envelope
