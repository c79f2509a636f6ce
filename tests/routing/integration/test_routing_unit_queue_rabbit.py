"""The unit-queue adapter's batched take on a real RabbitMQ quorum queue: the prefetch is set once per
channel, a full batch's consumer is cancelled without waiting, and nothing is lost or delivered twice."""

import json
import uuid

import pytest
from kombu import Connection
from routing.adapters.unit_queue import KombuUnitQueues
from shared.messaging import declare_unit_queue

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(amqp_vhost_factory):
    return amqp_vhost_factory()


def _put(url: str, code: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with Connection(url) as conn:
        declare_unit_queue(conn, code)
        producer = conn.Producer()
        for task_id in ids:
            producer.publish(
                json.dumps({"id": task_id, "ghi_chú": "Báo cáo trước ngày 15"}).encode(),
                routing_key=f"routing.tasks.{code}",
                exchange="",
                content_type="application/json",
                delivery_mode=2,
            )
    return ids


def _depth(url: str, code: str) -> int:
    with Connection(url) as conn:
        return int(conn.channel().queue_declare(f"routing.tasks.{code}", passive=True).message_count)


def test_batches_drain_the_queue_once_each_and_leave_no_consumer_behind(broker, monkeypatch):
    code = f"UQ.{uuid.uuid4().hex[:8]}"
    sent = _put(broker, code, 25)
    queues = KombuUnitQueues(broker)
    qos_calls: list[int] = []
    try:
        taken: list[str] = []
        sizes = []
        for _ in range(4):
            with queues.reader(code) as reader:
                channel = reader.lane.channel
                if not qos_calls:
                    real_qos = channel.basic_qos
                    monkeypatch.setattr(
                        channel,
                        "basic_qos",
                        lambda size, count, glob, real=real_qos: (
                            qos_calls.append(count) or real(size, count, glob)
                        ),
                    )
                batch = reader.get_many(10)
                sizes.append(len(batch))
                taken += [json.loads(m.body)["id"] for m in batch]
                reader.ack(batch)
                # Whether the cancel was confirmed or not, the channel keeps no consumer of this poll.
                assert channel.callbacks == {}
        assert sizes == [10, 10, 5, 0]
        assert sorted(taken) == sorted(sent)
        assert _depth(broker, code) == 0
        # 9 for the two full batches (the first message comes by basic_get), 4 for the last: set twice.
        assert qos_calls == [9, 4]
        # A message published now waits in the queue: no cancelled consumer of a full batch takes it.
        late = _put(broker, code, 1)
        assert _depth(broker, code) == 1
        with queues.reader(code) as reader:
            batch = reader.get_many(10)
            assert [json.loads(m.body)["id"] for m in batch] == late
            reader.ack(batch)
    finally:
        queues.close()
