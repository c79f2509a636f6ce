"""The envelope: round-trips Vietnamese text intact and refuses anything malformed."""

import contextvars
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared.envelope import Envelope, MalformedMessage
from shared.logs import correlation_scope

PAYLOAD = {
    "subject": "Về việc tăng cường công tác bảo đảm an toàn thực phẩm dịp Tết Nguyên đán",
    "issuer": {"name": "Ban Tuyên giáo Tỉnh ủy", "code": "BTGTU"},
    "notation": "171-CV/BTGTU",
    "to_places": ["Phòng Văn hóa và Thông tin các huyện", "Đài Phát thanh - Truyền hình"],
    "page_amount": 3,
}


def test_round_trip_keeps_every_field_and_vietnamese_text():
    env = Envelope.new("intake.directive_registered", PAYLOAD, producer="intake", correlation_id="c-1")
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.payload["subject"] == PAYLOAD["subject"]


def test_bytes_are_utf8_json_without_ascii_escapes():
    env = Envelope.new("intake.directive_registered", PAYLOAD, producer="intake")
    raw = env.to_bytes()
    assert "Tỉnh ủy".encode() in raw
    assert b"\\u" not in raw
    assert set(json.loads(raw)) == {
        "id",
        "type",
        "version",
        "occurred_at",
        "correlation_id",
        "producer",
        "payload",
    }


def test_routing_key_is_type_and_version():
    env = Envelope.new("routing.task_assigned", {}, producer="routing", version=2)
    assert env.routing_key == "routing.task_assigned.v2"


def test_new_takes_the_current_correlation_id_and_is_utc():
    with correlation_scope("req-42"):
        env = Envelope.new("intake.directive_registered", {}, producer="intake")
    assert env.correlation_id == "req-42"
    assert env.occurred_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - env.occurred_at) < timedelta(seconds=5)


def test_new_without_a_scope_makes_a_correlation_id_and_unique_ids():
    # An empty context: no correlation id that an earlier test may have left behind.
    a, b = contextvars.Context().run(
        lambda: [Envelope.new("intake.x", {}, producer="intake") for _ in range(2)]
    )
    assert a.correlation_id and b.correlation_id and a.correlation_id != b.correlation_id
    assert a.id != b.id


def test_offset_of_occurred_at_survives():
    hcm = timezone(timedelta(hours=7))
    env = Envelope("i", "intake.x", 1, datetime(2025, 1, 2, 8, 30, tzinfo=hcm), "c", "intake", {})
    assert Envelope.from_bytes(env.to_bytes()).occurred_at == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)


def _good() -> dict:
    return json.loads(Envelope.new("intake.x", {"a": 1}, producer="intake").to_bytes())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("id"), "id"),
        (lambda d: d.update(id=""), "id"),
        (lambda d: d.update(type=5), "type"),
        (lambda d: d.update(version=True), "version"),
        (lambda d: d.update(version="1"), "version"),
        (lambda d: d.update(version=0), "version"),
        (lambda d: d.update(occurred_at="yesterday"), "occurred_at"),
        (lambda d: d.update(occurred_at="2025-01-02T08:30:00"), "occurred_at"),
        (lambda d: d.pop("correlation_id"), "correlation_id"),
        (lambda d: d.update(producer=None), "producer"),
        (lambda d: d.update(payload=[1, 2]), "payload"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(mutate, field):
    data = _good()
    mutate(data)
    with pytest.raises(MalformedMessage, match=field):
        Envelope.from_bytes(json.dumps(data).encode())


@pytest.mark.parametrize("raw", [b"", b"garbage", b"\xff\xfe\x00", b"[1, 2]", b'"text"', b"null"])
def test_non_envelope_bytes_are_malformed(raw):
    with pytest.raises(MalformedMessage):
        Envelope.from_bytes(raw)


def test_unknown_fields_are_tolerated():
    data = _good()
    data["future_field"] = "x"
    assert Envelope.from_bytes(json.dumps(data).encode()).payload == {"a": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(payload=st.dictionaries(st.text(), json_values, max_size=6), producer=st.text(min_size=1))
def test_any_json_payload_and_any_unicode_round_trip(payload, producer):
    env = Envelope.new("intake.directive_registered", payload, producer=producer, correlation_id="c")
    assert Envelope.from_bytes(env.to_bytes()) == env
