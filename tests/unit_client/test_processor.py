"""The per-message rules, with fakes for the unit's side and the routing service (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from docroute_unit.backoff import Backoff, FailureTracker
from docroute_unit.dedup import SeenTasks
from docroute_unit.handoff import HandOffError
from docroute_unit.messages import UnitMessage
from docroute_unit.processor import Action, TaskProcessor
from docroute_unit.routing_api import AckError, PermanentAckError

from .support import encode, envelope, task_offer

UNIT = "DTTTH.BUDANG"


class FakeSink:
    def __init__(self, failures: int = 0, journal: list[str] | None = None) -> None:
        self.failures = failures
        self.delivered: list[UnitMessage] = []
        self.journal = journal if journal is not None else []

    def deliver(self, message: UnitMessage) -> None:
        self.journal.append(f"hand-off {message.task_id}")
        if self.failures:
            self.failures -= 1
            raise HandOffError("hook answered 503")
        self.delivered.append(message)


class FakeAcker:
    def __init__(self, errors: list[Exception] | None = None, journal: list[str] | None = None) -> None:
        self.errors = errors or []
        self.acked: list[str] = []
        self.journal = journal if journal is not None else []

    def ack(self, task_id: str, *, correlation_id: str | None = None) -> int:
        self.journal.append(f"ack {task_id}")
        if self.errors:
            raise self.errors.pop(0)
        self.acked.append(task_id)
        return 200


def make(
    sink: FakeSink, acker: FakeAcker | None = None, *, max_failures: int = 3, seen: SeenTasks | None = None
) -> TaskProcessor:
    return TaskProcessor(
        unit=UNIT,
        sink=sink,
        seen=SeenTasks(100) if seen is None else seen,
        failures=FailureTracker(max_failures),
        retry_backoff=Backoff(0.5, 4.0, jitter=False),
        acker=acker,  # type: ignore[arg-type]
    )


def test_task_is_handed_on_then_receipted_then_acked() -> None:
    journal: list[str] = []
    sink, acker = FakeSink(journal=journal), FakeAcker(journal=journal)
    outcome = make(sink, acker).process(encode(task_offer(UNIT, 1, task_id="t1")))
    assert outcome.action is Action.ACK and outcome.handed_on
    assert journal == ["hand-off t1", "ack t1"]
    assert sink.delivered[0].payload["subject"].startswith("Kế hoạch")


def test_failed_hand_off_requeues_with_growing_delay_and_never_receipts() -> None:
    sink, acker = FakeSink(failures=2), FakeAcker()
    processor = make(sink, acker)
    body = encode(task_offer(UNIT, 1, task_id="t1"))
    first, second, third = (processor.process(body) for _ in range(3))
    assert (first.action, first.delay) == (Action.REQUEUE, 0.5)
    assert (second.action, second.delay) == (Action.REQUEUE, 1.0)
    assert third.action is Action.ACK
    assert len(sink.delivered) == 1
    assert acker.acked == ["t1"]


def test_message_goes_to_dead_letters_after_max_consecutive_failures() -> None:
    sink = FakeSink(failures=10)
    processor = make(sink, max_failures=3)
    body = encode(task_offer(UNIT, 1))
    actions = [processor.process(body).action for _ in range(3)]
    assert actions == [Action.REQUEUE, Action.REQUEUE, Action.REJECT]


def test_broker_delivery_count_shortens_the_retries_left() -> None:
    outcome = make(FakeSink(failures=1), max_failures=3).process(
        encode(task_offer(UNIT, 1)), delivery_count=2
    )
    assert outcome.action is Action.REJECT


def test_receipt_failure_retries_without_handing_on_twice() -> None:
    sink, acker = FakeSink(), FakeAcker(errors=[AckError("routing answered 503")])
    processor = make(sink, acker)
    body = encode(task_offer(UNIT, 1, task_id="t1"))
    assert processor.process(body).action is Action.REQUEUE
    again = processor.process(body)
    assert again.action is Action.ACK and not again.handed_on
    assert len(sink.delivered) == 1
    assert acker.acked == ["t1"]


def test_same_task_offered_again_in_a_new_envelope_is_not_handed_on_again() -> None:
    sink = FakeSink()
    processor = make(sink, FakeAcker())
    assert processor.process(encode(task_offer(UNIT, 1, task_id="t1"))).handed_on
    assert processor.process(encode(task_offer(UNIT, 1, task_id="t1"))).action is Action.ACK
    assert len(sink.delivered) == 1


def test_state_file_prevents_a_second_hand_off_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "seen.jsonl"
    body = encode(task_offer(UNIT, 1, task_id="t1"))
    seen = SeenTasks(100, path)
    # The first process handed the task on but died before routing recorded it.
    first = make(FakeSink(), FakeAcker(errors=[AckError("timeout")]), seen=seen)
    assert first.process(body).action is Action.REQUEUE
    seen.close()
    sink = FakeSink()
    assert make(sink, FakeAcker(), seen=SeenTasks(100, path)).process(body).action is Action.ACK
    assert sink.delivered == []


def test_permanent_receipt_refusal_dead_letters_at_once() -> None:
    acker = FakeAcker(errors=[PermanentAckError("routing refused the ack with 404")])
    outcome = make(FakeSink(), acker).process(encode(task_offer(UNIT, 1)))
    assert outcome.action is Action.REJECT
    assert "404" in outcome.reason


def test_reminders_are_handed_on_but_not_receipted() -> None:
    sink, acker = FakeSink(), FakeAcker()
    body = encode(envelope("routing.task_reminder", {"task_id": "t1", "unit": UNIT, "message": "Quá hạn"}))
    assert make(sink, acker).process(body).action is Action.ACK
    assert [m.type for m in sink.delivered] == ["routing.task_reminder"]
    assert acker.journal == []


def test_without_a_routing_url_tasks_are_acked_after_the_hand_off() -> None:
    sink = FakeSink()
    assert make(sink, None).process(encode(task_offer(UNIT, 1))).action is Action.ACK
    assert len(sink.delivered) == 1


@pytest.mark.parametrize("body", [b"not json", encode(task_offer("SYT", 1))], ids=["malformed", "misrouted"])
def test_malformed_or_misrouted_message_is_rejected_without_hand_off(body: bytes) -> None:
    sink = FakeSink()
    assert make(sink, FakeAcker()).process(body).action is Action.REJECT
    assert sink.journal == []


def test_a_cancellation_is_handed_on_once_and_acked_without_a_receipt(tmp_path: Path) -> None:
    offer = task_offer(UNIT, 1, task_id="t1")
    cancelled = envelope(
        "routing.task_cancelled",
        {
            **offer["payload"],
            "status": "cancelled",
            "reason": "Văn bản bị thu hồi",
            "revoked_at": "2021-04-20",
        },
    )
    sink, acker = FakeSink(), FakeAcker()
    seen = SeenTasks(100, tmp_path / "seen.json")
    processor = make(sink, acker, seen=seen)
    assert processor.process(encode(offer)).action is Action.ACK
    assert processor.process(encode(cancelled)).action is Action.ACK
    seen.close()
    # The same cancellation again (a redelivery after a crash) is not handed on twice, even after a restart.
    again = make(sink, acker, seen=SeenTasks(100, tmp_path / "seen.json"))
    assert again.process(encode(cancelled)).action is Action.ACK
    assert [(m.type, m.task_id) for m in sink.delivered] == [
        ("routing.task_offered", "t1"),
        ("routing.task_cancelled", "t1"),
    ]
    assert sink.delivered[1].payload["reason"] == "Văn bản bị thu hồi"
    assert acker.journal == ["ack t1"]  # only the offer's receipt goes to routing


def test_each_update_of_a_task_is_handed_on_once_and_acked_without_a_receipt(tmp_path: Path) -> None:
    offer = task_offer(UNIT, 1, task_id="t1")

    def updated(revision: int) -> dict:
        return envelope(
            "routing.task_updated",
            {
                **offer["payload"],
                "due_date": "2021-04-30",
                "revision": revision,
                "changes": {"due_date": {"from": "2021-05-14", "to": "2021-04-30"}},
                "reason": "Rút ngắn hạn xử lý",
                "due_date_from": "2021-05-14",
            },
        )

    sink, acker = FakeSink(), FakeAcker()
    seen = SeenTasks(100, tmp_path / "seen.json")
    processor = make(sink, acker, seen=seen)
    assert processor.process(encode(offer)).action is Action.ACK
    second = updated(2)
    assert processor.process(encode(second)).action is Action.ACK
    seen.close()
    # Revision 2 again (a redelivery after a restart) is not handed on twice; revision 3 is news.
    again = make(sink, acker, seen=SeenTasks(100, tmp_path / "seen.json"))
    assert again.process(encode(second)).action is Action.ACK
    assert again.process(encode(updated(3))).action is Action.ACK
    assert [(m.type, m.task_id, m.payload.get("revision")) for m in sink.delivered] == [
        ("routing.task_offered", "t1", None),
        ("routing.task_updated", "t1", 2),
        ("routing.task_updated", "t1", 3),
    ]
    assert sink.delivered[1].payload["reason"] == "Rút ngắn hạn xử lý"
    assert acker.journal == ["ack t1"]  # only the offer's receipt goes to routing
