"""`docroute dlq list|replay`: an operator sees why a message was dead-lettered and puts it back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from kombu import Connection, Queue
from shared.envelope import Envelope
from shared.messaging import EventConsumer, PermanentError, Publisher, Subscription, declare_topology
from shared.naming import dlq_name

from docroute.cli import main

pytestmark = pytest.mark.integration

QUEUE = "routing.intake.directive_registered"


def _depth(url: str, queue: str) -> int:
    with Connection(url) as conn:
        _, count, _ = conn.channel().queue_declare(queue, passive=True)
    return int(count)


def _depth_once_settled(url: str, queue: str, expected: int, timeout: float = 10.0) -> int:
    """The depth once it is `expected` (or after `timeout`): messages a listing took and gave back are
    ready again only once the broker has processed the requeue."""
    deadline = time.monotonic() + timeout
    while (seen := _depth(url, queue)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return seen


def test_list_shows_the_dead_letter_and_replay_puts_it_back(
    amqp_vhost_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    url = amqp_vhost_factory()
    with Connection(url) as conn:
        declare_topology(conn, delivery_limit=5)

    def refuse(envelope: Envelope) -> None:
        raise PermanentError("đơn vị chưa tồn tại")

    consumer = EventConsumer(
        url, [Subscription(QUEUE, "intake.events", "intake.directive_registered.v1", refuse)]
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.ready.wait(10)
    envelope = Envelope.new("intake.directive_registered", {"số_đến": 42}, producer="intake")
    with Publisher(url) as publisher:
        publisher.publish(
            exchange="intake.events",
            routing_key=envelope.routing_key,
            body=envelope.to_bytes(),
            message_id=envelope.id,
        )
    assert _depth_once_settled(url, dlq_name(QUEUE), 1) == 1, "the message was not dead-lettered"
    stop.set()
    thread.join(5)

    monkeypatch.setenv("DOCROUTE_AMQP_URL", url)
    monkeypatch.setenv("DOCROUTE_DATA_DIR", str(tmp_path))
    listed = CliRunner().invoke(main, ["dlq", "list", QUEUE])
    assert listed.exit_code == 0, listed.output
    assert envelope.id in listed.output
    assert _depth_once_settled(url, dlq_name(QUEUE), 1) == 1  # listing takes nothing away

    replayed = CliRunner().invoke(main, ["dlq", "replay", QUEUE])
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed 1 message(s) from {dlq_name(QUEUE)}" in replayed.output
    assert _depth(url, dlq_name(QUEUE)) == 0
    with Connection(url) as conn:
        message = Queue(QUEUE, no_declare=True)(conn.channel()).get(no_ack=True)
    assert message is not None and message.properties["message_id"] == envelope.id
