"""The bench's broker helpers: the shared vhost is emptied of what a row left for services it did not run."""

from urllib.parse import unquote, urlsplit

import pika
import pytest

from bench.broker import (
    connect,
    delete_queues,
    purge_queues,
    queue_depths,
    system_queues,
    unit_queues_in,
)


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


@pytest.mark.integration
def test_the_unit_queues_of_a_vhost_are_listed_and_deleted(amqp_url: str) -> None:
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        for name in ("routing.tasks.BENCH.00001", "routing.tasks.BENCH.00001.dlq", "archive.keep"):
            channel.queue_declare(name, durable=True)
    finally:
        conn.close()
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/"))
    assert sorted(unit_queues_in(vhost)) == ["routing.tasks.BENCH.00001", "routing.tasks.BENCH.00001.dlq"]
    assert delete_queues(amqp_url, unit_queues_in(vhost)) == 2
    assert unit_queues_in(vhost) == []
    assert queue_depths(amqp_url, ["archive.keep"]) == {"archive.keep": 0}
