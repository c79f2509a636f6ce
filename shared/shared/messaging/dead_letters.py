"""Dead-letter queue tools for operators: list what waits in a DLQ, replay it where it came from."""

# kombu ships py.typed but leaves most functions unannotated; strict mode would flag every call into it.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.transport.base import Message

from shared.envelope import Envelope, MalformedMessage
from shared.messaging.broker import body_bytes, open_channel
from shared.messaging.publishing import Publisher
from shared.naming import dlq_name, replay_exchange

log = logging.getLogger(__name__)

#: Headers the broker adds when dead-lettering; dropped when a message is replayed.
_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count", "x-docroute-")


@dataclass(frozen=True)
class DeadLetter:
    """One message waiting in a dead-letter queue."""

    body: bytes
    headers: dict[str, Any]
    envelope: Envelope | None
    reason: str | None
    exchange: str | None
    routing_key: str | None
    queue: str | None = None

    def __str__(self) -> str:
        """One line for the operator: why, from where, and which event (or the start of the raw body)."""
        what = (
            f"{self.envelope.type} v{self.envelope.version} id={self.envelope.id}"
            if self.envelope
            else "malformed body " + self.body[:80].decode("utf-8", errors="replace")
        )
        return f"[{self.reason or '?'}] {self.exchange or '?'} {self.routing_key or '?'}: {what}"


def _death(headers: Mapping[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _as_dead_letter(message: Any) -> DeadLetter:
    headers = dict(message.headers or {})
    body = body_bytes(message)
    try:
        envelope: Envelope | None = Envelope.from_bytes(body)
    except MalformedMessage:
        envelope = None
    death = _death(headers)
    keys = death.get("routing-keys") or []
    reason = death.get("reason")
    exchange = death.get("exchange")
    queue = death.get("queue")
    return DeadLetter(
        body=body,
        headers=headers,
        envelope=envelope,
        reason=reason if isinstance(reason, str) else None,
        exchange=exchange if isinstance(exchange, str) else None,
        routing_key=keys[0] if keys and isinstance(keys[0], str) else None,
        queue=queue if isinstance(queue, str) else None,
    )


def _dlq_of(queue: str) -> str:
    # Operators type either the consumer queue or its DLQ; both mean the same dead-letter queue.
    return queue if queue.endswith(".dlq") else dlq_name(queue)


def _get(channel: Any, queue: str) -> Message | None:
    # kombu's Queue.get hands back a kombu Message on every transport (body as bytes, headers, ack()).
    message: Message | None = Queue(_dlq_of(queue), no_declare=True)(channel).get(no_ack=False)
    return message


def list_dlq(url: str, queue: str, limit: int = 50) -> list[DeadLetter]:
    """Look at up to `limit` messages of the dead-letter queue of `queue` (or of `queue` if it is a `.dlq`)
    without removing them."""
    fetched: list[Message] = []
    with Connection(url, connect_timeout=5) as conn, open_channel(conn) as channel:
        for _ in range(limit):
            message = _get(channel, queue)
            if message is None:
                break
            fetched.append(message)
        # Put them back only after fetching all, or the broker would hand the first one out again. (The
        # memory transport does not restore unacked messages on close, so it is done explicitly.)
        for message in fetched:
            message.requeue()
    return [_as_dead_letter(message) for message in fetched]


def replay_dlq(url: str, queue: str, limit: int = 50, *, confirm_timeout: float = 5.0) -> int:
    """Republish up to `limit` dead letters of `queue` to the queue they died in.

    They go through the owning service's replay exchange (`<owner>.replay`, key: the queue name), so only
    that queue gets them again and the owner's broker user needs no write right on another service's
    exchange; a dead letter that does not name its queue goes back to its original exchange and key.
    Each message is acked from the DLQ only after the broker confirmed the republish; returns the count.
    """
    replayed = 0
    with (
        Publisher(url, confirm_timeout=confirm_timeout) as publisher,
        Connection(url, connect_timeout=5) as conn,
        open_channel(conn) as channel,
    ):
        while replayed < limit:
            message = _get(channel, queue)
            if message is None:
                break
            dead = _as_dead_letter(message)
            if dead.exchange is None or dead.routing_key is None:
                log.warning("dead letter without x-death origin left in place", extra={"queue": queue})
                break
            headers = {k: v for k, v in dead.headers.items() if not k.startswith(_DEATH_HEADERS)}
            message_id = (message.properties or {}).get("message_id") or (
                dead.envelope.id if dead.envelope else ""
            )
            exchange, routing_key = (
                (replay_exchange(dead.queue), dead.queue) if dead.queue else (dead.exchange, dead.routing_key)
            )
            publisher.publish(
                exchange=exchange,
                routing_key=routing_key,
                body=dead.body,
                message_id=str(message_id),
                headers=headers,
                content_type=message.content_type or "application/json",
            )
            message.ack()
            replayed += 1
    return replayed
