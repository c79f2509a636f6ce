"""What happens to one message: decode, hand on once, record the receipt, then ack, requeue or reject."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from docroute_unit.backoff import Backoff, FailureTracker
from docroute_unit.dedup import SeenTasks
from docroute_unit.handoff import HandOffError, Sink
from docroute_unit.messages import TASK_OFFERED, MalformedMessage, decode
from docroute_unit.routing_api import AckError, PermanentAckError, RoutingAcker

log = logging.getLogger("docroute_unit.processor")


class Action(enum.Enum):
    ACK = "ack"
    REQUEUE = "requeue"  # after `Outcome.delay`, so a failing hook or routing service is not hammered
    REJECT = "reject"  # without requeue: the queue dead-letters it to `routing.tasks.<unit>.dlq`


@dataclass(frozen=True)
class Outcome:
    action: Action
    reason: str = ""
    delay: float = 0.0
    message_id: str | None = None
    handed_on: bool = False


class TaskProcessor:
    """Decides each message's fate; knows nothing of pika, so the rules are testable without a broker.

    Order is what makes delivery at-least-once: the hand-off comes first, the routing receipt second and
    the broker ack last, so a crash at any point leaves the message on the queue. The seen-set makes the
    redelivery after such a crash skip the hand-off but still complete the receipt and the ack.
    """

    def __init__(
        self,
        *,
        unit: str,
        sink: Sink,
        seen: SeenTasks,
        failures: FailureTracker,
        retry_backoff: Backoff,
        acker: RoutingAcker | None = None,
    ) -> None:
        self.unit = unit
        self.sink = sink
        self.seen = seen
        self.failures = failures
        self.retry_backoff = retry_backoff
        self.acker = acker

    def process(self, body: bytes, *, delivery_count: int = 0) -> Outcome:
        try:
            message = decode(body, unit=self.unit)
        except MalformedMessage as exc:
            log.error("malformed message sent to the dead-letter queue", extra={"reason": str(exc)})
            return Outcome(Action.REJECT, f"malformed: {exc}")

        fields = {"message_id": message.id, "type": message.type, "task_id": message.task_id}
        handed_on = False
        try:
            if message.dedup_key in self.seen:
                log.info("already handed on; not handing on again", extra=fields)
            else:
                self.sink.deliver(message)
                self.seen.add(message.dedup_key)
                handed_on = True
                log.info("handed on", extra=fields)
            if self.acker is not None and message.type == TASK_OFFERED:
                assert message.task_id is not None  # decode() guarantees it
                status = self.acker.ack(message.task_id, correlation_id=message.correlation_id)
                log.info("receipt recorded by routing", extra={**fields, "status": status})
        except PermanentAckError as exc:
            log.error("routing refused the receipt; dead-lettering", extra={**fields, "reason": str(exc)})
            self.failures.clear(message.id)
            return Outcome(Action.REJECT, str(exc), message_id=message.id, handed_on=handed_on)
        except (HandOffError, AckError) as exc:
            count = self.failures.record(message.id, delivery_count)
            if self.failures.exhausted(count):
                log.error(
                    "giving up after consecutive failures; dead-lettering",
                    extra={**fields, "failures": count, "reason": str(exc)},
                )
                self.failures.clear(message.id)
                return Outcome(Action.REJECT, str(exc), message_id=message.id, handed_on=handed_on)
            delay = self.retry_backoff.delay(count)
            retry = {"failures": count, "retry_in": round(delay, 3), "reason": str(exc)}
            log.warning("will retry", extra={**fields, **retry})
            return Outcome(Action.REQUEUE, str(exc), delay=delay, message_id=message.id, handed_on=handed_on)
        self.failures.clear(message.id)
        return Outcome(Action.ACK, message_id=message.id, handed_on=handed_on)
