"""The bench's broker helpers: the shared vhost is emptied of what a row left for services it did not run."""

import pika
import pytest

from bench.broker import connect, purge_queues, queue_depths, system_queues


def test_the_system_queues_are_every_consumer_queue_its_dlq_and_the_unrouted_queues() -> None:
    queues = system_queues()
    assert "archive.intake.directive_registered" in queues
    assert "archive.intake.directive_registered.dlq" in queues
    assert "routing.intake.directive_registered" in queues
    assert "intake.events.unrouted" in queues
    assert len(queues) == len(set(queues))


@pytest.mark.integration
def test_purging_empties_the_named_queues_and_skips_missing_ones(amqp_url: str) -> None:
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        channel.queue_declare("archive.intake.directive_registered", durable=True)
        for n in range(3):
            channel.basic_publish(
                "",
                "archive.intake.directive_registered",
                f"left over {n}".encode(),
                pika.BasicProperties(delivery_mode=2),
            )
    finally:
        conn.close()
    assert purge_queues(amqp_url, ["no.such.queue", "archive.intake.directive_registered"]) == 3
    assert queue_depths(amqp_url, ["archive.intake.directive_registered"]) == {
        "archive.intake.directive_registered": 0
    }
