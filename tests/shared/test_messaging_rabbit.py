"""Publisher and consumer behaviour that needs a real AMQP peer: confirms, bounded failure, reconnects."""

import socket
import subprocess
import threading
import time
from urllib.parse import unquote, urlsplit

import pytest
from kombu import Connection, Exchange, Queue
from shared.envelope import Envelope
from shared.messaging import (
    EventConsumer,
    Publisher,
    PublishError,
    Subscription,
    declare_consumer_queue,
    declare_unit_queue,
)
from shared.naming import TASKS_EXCHANGE, unit_queue

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_confirmed_publish_is_on_the_queue(rabbit_url: str):
    vhost_url = rabbit_url
    with Connection(vhost_url) as conn:
        declare_consumer_queue(conn, "archive.intake.directive_registered", "intake.events", "intake.#")
    env = Envelope.new("intake.directive_registered", {"số_đến": 1}, producer="intake")
    with Publisher(vhost_url) as publisher:
        publisher.publish(
            exchange="intake.events", routing_key=env.routing_key, body=env.to_bytes(), message_id=env.id
        )
    # No waiting: once publish returned, the broker has confirmed the message is queued.
    with Connection(vhost_url) as conn:
        message = Queue("archive.intake.directive_registered", no_declare=True)(conn.channel()).get(
            no_ack=True
        )
    assert message is not None and message.properties["message_id"] == env.id


def test_an_unreachable_broker_raises_publish_error_within_the_budget():
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}//", confirm_timeout=0.5, retries=2)
    t0 = time.monotonic()
    with pytest.raises(PublishError):
        publisher.publish(exchange="intake.events", routing_key="k", body=b"{}", message_id="m")
    assert time.monotonic() - t0 < 0.5 * 3 + 0.5


def test_a_broker_that_never_answers_raises_publish_error_within_the_budget():
    # A listening socket completes the TCP handshake but never speaks AMQP: the worst case of a hung broker.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{port}//", confirm_timeout=0.4, retries=2)
        t0 = time.monotonic()
        with pytest.raises(PublishError):
            publisher.publish(exchange="intake.events", routing_key="k", body=b"{}", message_id="m")
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert 0.3 < elapsed < 0.4 * 3 + 0.6


class FreezingProxy:
    """A TCP proxy to RabbitMQ that can stop passing the broker's frames on: a broker that never confirms."""

    def __init__(self, target_port: int = 5672) -> None:
        self.target_port = target_port
        self.frozen = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_broker: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    return
                if not (from_broker and self.frozen.is_set()):
                    dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_a_broker_that_stops_confirming_raises_publish_error_within_the_budget(rabbit_url: str):
    with Connection(rabbit_url) as conn:
        declare_consumer_queue(conn, "archive.routing.task_overdue", "routing.events", "routing.#")
    vhost = urlsplit(rabbit_url).path
    proxy = FreezingProxy()
    try:
        publisher = Publisher(
            f"amqp://guest:guest@127.0.0.1:{proxy.port}{vhost}", confirm_timeout=0.5, retries=1
        )
        publisher.publish(exchange="routing.events", routing_key="routing.a.v1", body=b"{}", message_id="1")
        proxy.frozen.set()
        t0 = time.monotonic()
        with pytest.raises(PublishError):
            publisher.publish(
                exchange="routing.events", routing_key="routing.a.v1", body=b"{}", message_id="2"
            )
        elapsed = time.monotonic() - t0
    finally:
        proxy.close()
    assert 0.4 < elapsed < 0.5 * 2 + 0.6


def test_unit_queues_are_quorum_and_bound_by_unit_code(rabbit_url: str):
    vhost_url = rabbit_url
    with Connection(vhost_url) as conn:
        declare_unit_queue(conn, "DAI_PTTH_TEST")
        declare_unit_queue(conn, "PHONG_VHTT")
        with pytest.raises(Exception, match="PRECONDITION_FAILED"):
            Queue(
                unit_queue("DAI_PTTH_TEST"), Exchange(TASKS_EXCHANGE, "direct"), "DAI_PTTH_TEST", durable=True
            )(conn.channel()).declare()
    with Publisher(vhost_url) as publisher:
        publisher.publish(exchange=TASKS_EXCHANGE, routing_key="DAI_PTTH_TEST", body=b"{}", message_id="t-1")
    with Connection(vhost_url) as conn:
        channel = conn.channel()
        assert Queue(unit_queue("PHONG_VHTT"), no_declare=True)(channel).get() is None
        got = Queue(unit_queue("DAI_PTTH_TEST"), no_declare=True)(channel).get(no_ack=True)
    assert got is not None and got.properties["message_id"] == "t-1"


def test_the_publisher_reconnects_after_the_broker_dropped_its_connection(vhost_url: str, caplog):
    with Connection(vhost_url) as conn:
        declare_consumer_queue(conn, "routing.intake.directive_registered", "intake.events", "intake.#")
    with Publisher(vhost_url, confirm_timeout=2.0) as publisher:
        publisher.publish(exchange="intake.events", routing_key="intake.a.v1", body=b"{}", message_id="1")
        close_connections(vhost_url)
        with caplog.at_level("WARNING", logger="shared.messaging"):
            publisher.publish(exchange="intake.events", routing_key="intake.a.v1", body=b"{}", message_id="2")
    # The first attempt hit the dropped connection; the retry on a new one was confirmed.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("shared.messaging")]
    assert ours == ["publish attempt failed"]
    with Connection(vhost_url) as conn:
        queue = Queue("routing.intake.directive_registered", no_declare=True)(conn.channel())
        ids = [queue.get(no_ack=True).properties["message_id"] for _ in range(2)]
    assert ids == ["1", "2"]


def test_the_consumer_resumes_after_the_broker_dropped_its_connection(vhost_url: str):
    got: list[str] = []
    consumer = EventConsumer(
        vhost_url,
        [
            Subscription(
                "archive.routing.task_assigned",
                "routing.events",
                "routing.task_assigned.v1",
                lambda e: got.append(e.id),
            )
        ],
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert consumer.ready.wait(10)
        close_connections(vhost_url)
        env = Envelope.new("routing.task_assigned", {}, producer="routing")
        with Publisher(vhost_url) as publisher:
            publisher.publish(
                exchange="routing.events", routing_key=env.routing_key, body=env.to_bytes(), message_id=env.id
            )
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got == [env.id]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def close_connections(url: str) -> None:
    vhost = unquote(urlsplit(url).path.lstrip("/"))
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "test: dropped by the broker"],
        check=True,
        capture_output=True,
        timeout=60,
    )
