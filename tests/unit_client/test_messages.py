"""Decoding of task envelopes: what is accepted, what goes to the dead-letter queue, what is handed on."""

from __future__ import annotations

import json

import pytest
from docroute_unit.messages import MalformedMessage, decode

from .support import encode, envelope, task_offer

UNIT = "PVHTT.DONGXOAI"


def test_task_offer_is_decoded_with_its_task_id_as_dedup_key() -> None:
    doc = task_offer(UNIT, 1, task_id="t-42")
    message = decode(encode(doc), unit=UNIT)
    assert message.type == "routing.task_offered"
    assert message.task_id == "t-42"
    assert message.dedup_key == "task:t-42"
    assert message.correlation_id == doc["correlation_id"]


def test_reminders_are_deduplicated_by_message_not_task_since_they_repeat() -> None:
    doc = envelope("routing.task_reminder", {"task_id": "t-42", "unit": UNIT, "message": "Sắp đến hạn"})
    message = decode(encode(doc), unit=UNIT)
    assert message.task_id == "t-42"
    assert message.dedup_key == f"message:{doc['id']}"


def test_hand_off_form_is_one_line_with_vietnamese_intact() -> None:
    doc = task_offer(UNIT, 7)
    # A pretty-printed body must still become exactly one line.
    message = decode(json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8"), unit=UNIT)
    line = message.to_json()
    assert b"\n" not in line
    assert "Kế hoạch tuyên truyền phòng, chống dịch bệnh số 7".encode() in line
    assert json.loads(line) == doc


def test_unit_given_as_object_with_code_is_accepted() -> None:
    doc = task_offer(UNIT, 1)
    doc["payload"]["unit"] = {"code": UNIT, "name": "Phòng Văn hóa và Thông tin thành phố Đồng Xoài"}
    assert decode(encode(doc), unit=UNIT).payload["unit"]["code"] == UNIT


def _mutations() -> list[tuple[str, bytes]]:
    def offer(**changes: object) -> bytes:
        doc = task_offer(UNIT, 1)
        for key, value in changes.items():
            if value is None:
                doc.pop(key)
            else:
                doc[key] = value
        return encode(doc)

    no_task_id = task_offer(UNIT, 1)
    del no_task_id["payload"]["id"]
    other_unit = task_offer("SYT", 1)
    return [
        ("not json", b"{oops"),
        ("not utf-8", b'{"id": "\xff"}'),
        ("array", b"[]"),
        ("missing id", offer(id=None)),
        ("empty type", offer(type="")),
        ("version string", offer(version="1")),
        ("version bool", offer(version=True)),
        ("payload list", offer(payload=[])),
        ("unknown type", offer(type="routing.task_exploded")),
        ("no task id", encode(no_task_id)),
        ("another unit", encode(other_unit)),
    ]


@pytest.mark.parametrize(("case", "body"), _mutations(), ids=[c for c, _ in _mutations()])
def test_malformed_envelopes_are_refused(case: str, body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(body, unit=UNIT)


def test_reminder_carrying_the_whole_task_as_routing_sends_it_is_understood() -> None:
    task = task_offer(UNIT, 1, task_id="t-7")["payload"]
    doc = envelope("routing.task_reminder", task | {"overdue": True})
    message = decode(encode(doc), unit=UNIT)
    assert message.task_id == "t-7"
    assert message.dedup_key == f"message:{doc['id']}"
