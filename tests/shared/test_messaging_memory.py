"""The memory:// transport the embedded suite's threads share: closing a channel while another thread
declares queues must not fail (kombu's own memory channel walks the process-wide queue table on close)."""

import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
import shared.messaging  # noqa: F401 - importing it installs the transport
from kombu import Connection
from shared.messaging.memory import Transport


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows, so that a race shows within a few hundred rounds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_memory_urls_use_the_threadsafe_transport() -> None:
    with Connection("memory://") as conn:
        assert isinstance(conn.transport, Transport)


def test_a_channel_closes_while_another_thread_declares_queues(busy_switching: None) -> None:
    stop = threading.Event()
    failures: list[BaseException] = []

    def declare() -> None:
        with Connection("memory://") as conn:
            channel = conn.channel()
            while not stop.is_set():
                channel.queue_declare(queue=f"race-{uuid.uuid4().hex}")

    def open_and_close() -> None:
        try:
            for _ in range(300):
                with Connection("memory://") as conn:
                    conn.channel().close()
        except BaseException as error:  # noqa: BLE001 - the test reports whatever the close raised
            failures.append(error)
        finally:
            stop.set()

    declarer = threading.Thread(target=declare)
    closer = threading.Thread(target=open_and_close)
    declarer.start()
    closer.start()
    closer.join(timeout=60)
    declarer.join(timeout=60)
    assert failures == []


def test_messages_still_flow_through_the_process_wide_queues() -> None:
    name = f"flow-{uuid.uuid4().hex}"
    with Connection("memory://") as sender, Connection("memory://") as receiver:
        sender.SimpleQueue(name).put({"tiêu_đề": "Triển khai Tháng hành động"})
        message = receiver.SimpleQueue(name).get(timeout=5)
        assert message.payload == {"tiêu_đề": "Triển khai Tháng hành động"}
        message.ack()
