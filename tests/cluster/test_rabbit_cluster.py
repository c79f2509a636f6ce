"""A three-node RabbitMQ cluster of our own (never the machine's node): docroute's whole topology declared on
it is quorum queues replicated on all three nodes, a queue keeps its messages when its leader stops, and a
`;`-separated DOCROUTE_AMQP_URL fails over from a node that is down to the next one."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection
from routing.adapters.unit_queue import KombuUnitQueues
from shared.envelope import Envelope
from shared.messaging import EventConsumer, Publisher, Subscription, declare_topology, wait_for_topology
from shared.naming import SUBSCRIPTIONS, TASKS_EXCHANGE, dlq_name, queue_name, unit_queue

from chaos.servers import RABBITMQ_BIN, RabbitNode, close_cluster, start_cluster, wait_for
from tests.unit_client.support import (
    ClientProcess,
    declare_unit_queue,
    encode,
    publish,
    task_offer,
    unique_unit,
)

pytestmark = pytest.mark.integration

UNITS = ("BPTV", "PVHTT.DONGXOAI", "SYT")


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    """Three private nodes (own names, AMQP and distribution ports, data folders), one Erlang cookie, joined
    into one cluster (chaos.servers.start_cluster); stopped and removed at the end."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.skip(f"no RabbitMQ server under {RABBITMQ_BIN}")
    base = tmp_path_factory.mktemp("rabbit-cluster")
    nodes = start_cluster(base)
    try:
        yield nodes
    finally:
        close_cluster(nodes)
        shutil.rmtree(base, ignore_errors=True)


def quorum_members(node: RabbitNode) -> dict[str, tuple[str, set[str]]]:
    """{queue: (type, member node names)} as the cluster reports them."""
    listing = node.ctl("list_queues", "-p", "/", "--no-table-headers", "name", "type", "members")
    out: dict[str, tuple[str, set[str]]] = {}
    for line in listing.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], set(re.findall(r"[\w.-]+@[\w.-]+", parts[2])))
    return out


def leader(node: RabbitNode, queue: str) -> str:
    for line in node.ctl("list_queues", "-p", "/", "--no-table-headers", "name", "leader").splitlines():
        name, _, lead = line.partition("\t")
        if name == queue:
            return lead.strip()
    raise AssertionError(f"no queue {queue}")


def test_docroute_topology_is_quorum_queues_on_all_three_nodes(rabbit_cluster: list[RabbitNode]) -> None:
    nodes = rabbit_cluster
    names = {n.name for n in nodes}
    # Declared through different nodes, as several replicas of the workers would.
    with Connection(nodes[0].amqp_url) as conn:
        declare_topology(conn, delivery_limit=5)
    queues = KombuUnitQueues(nodes[1].amqp_url, delivery_limit=5)
    try:
        queues.declare(UNITS)
    finally:
        queues.close()

    consumer_queues = {queue_name(c, s, e) for c, s, e, _v in SUBSCRIPTIONS}
    expected = consumer_queues | {unit_queue(u) for u in UNITS}
    expected |= {dlq_name(q) for q in expected}

    def all_replicated() -> bool:
        seen = quorum_members(nodes[2])
        return all(q in seen and seen[q][1] == names for q in expected)

    wait_for(all_replicated, timeout=60, what="every docroute queue replicated on three nodes")
    seen = quorum_members(nodes[2])
    assert expected <= set(seen)
    for name, (kind, members) in seen.items():
        assert kind == "quorum", name
        assert members == names, name


def test_a_queue_keeps_its_messages_when_its_leader_stops(rabbit_cluster: list[RabbitNode]) -> None:
    nodes = rabbit_cluster
    queue = queue_name("routing", "intake", "directive_registered")
    with Connection(nodes[0].amqp_url) as conn:
        declare_topology(conn, delivery_limit=5)
    lead = leader(nodes[0], queue)
    stopped = next(n for n in nodes if n.name == lead)
    others = [n for n in nodes if n is not stopped]
    bodies = [f"chỉ đạo {i}".encode() for i in range(20)]
    with Publisher(others[0].amqp_url, confirm_timeout=10) as publisher:
        for i, body in enumerate(bodies):
            publisher.publish(
                exchange="intake.events",
                routing_key="intake.directive_registered.v1",
                body=body,
                message_id=f"m{i}",
            )
    stopped.stop()
    try:
        got: list[bytes] = []
        with Connection(others[1].amqp_url) as conn:
            channel = conn.channel()

            def ready() -> int:
                probe = conn.channel()
                try:
                    return int(probe.queue_declare(queue=queue, passive=True).message_count)
                except Exception:  # noqa: BLE001 - no leader elected yet (the error closes the probe)
                    return -1
                finally:
                    with contextlib.suppress(Exception):
                        probe.close()

            # A new leader among the two nodes left, holding every confirmed message.
            wait_for(lambda: ready() == len(bodies), timeout=60, what="a new leader with every message")
            while len(got) < len(bodies):
                message = channel.basic_get(queue, no_ack=False)
                assert message is not None
                body = message.body
                got.append(body if isinstance(body, bytes) else body.encode("utf-8"))
                channel.basic_ack(message.delivery_tag)
        assert got == bodies
        assert leader(others[0], queue) != lead
    finally:
        stopped.start()


def down_node_url() -> str:
    """The URL of a broker node that is down: a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/"


def test_a_url_list_fails_over_to_the_next_node_for_topology_publish_and_consume(
    rabbit_cluster: list[RabbitNode],
) -> None:
    nodes = rabbit_cluster
    # What an operator puts in DOCROUTE_AMQP_URL: every node, the first of them down.
    url = ";".join([down_node_url(), nodes[1].amqp_url, nodes[2].amqp_url])
    stop = threading.Event()
    assert wait_for_topology(url, stop, delivery_limit=5, timeout=5)
    queue = queue_name("archive", "intake", "directive_registered")
    got: list[Envelope] = []
    consumer = EventConsumer(
        url,
        [Subscription(queue, "intake.events", "intake.directive_registered.v1", got.append)],
        delivery_limit=5,
    )
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert consumer.ready.wait(30), "the consumer never connected"
        payload = {"subject": "Về việc chuyển đổi số"}
        event = Envelope.new("intake.directive_registered", payload, producer="intake")
        with Publisher(url, confirm_timeout=10) as publisher:
            publisher.publish(
                exchange="intake.events",
                routing_key=event.routing_key,
                body=event.to_bytes(),
                message_id=event.id,
            )
        wait_for(lambda: bool(got), timeout=30, what="the event consumed")
        assert [(e.id, e.payload) for e in got] == [(event.id, payload)]
    finally:
        stop.set()
        thread.join(15)


def test_the_unit_queue_adapter_fails_over_when_its_node_stops(rabbit_cluster: list[RabbitNode]) -> None:
    """Routing's unit-queue adapter (polls and declares) takes the URL list too: the first node down, it
    uses the next; the node its pooled connection is on stopped, the next poll reconnects to another."""
    nodes = rabbit_cluster
    url = ";".join([down_node_url(), nodes[1].amqp_url, nodes[2].amqp_url])
    code = f"PVHTT.F{secrets.token_hex(3).upper()}"
    queues = KombuUnitQueues(url, delivery_limit=5)

    def offer(n: int) -> None:
        event = Envelope.new(
            "routing.task_offered", {"id": f"t{n}", "unit": code, "tiêu_đề": "Khẩn"}, producer="routing"
        )
        with Publisher(url, confirm_timeout=10) as publisher:
            publisher.publish(
                exchange=TASKS_EXCHANGE, routing_key=code, body=event.to_bytes(), message_id=event.id
            )

    def poll() -> list[str]:
        with queues.reader(code) as reader:
            got = reader.get_many(10)
            reader.ack(got)
        return [Envelope.from_bytes(m.body).payload["id"] for m in got]

    try:
        queues.declare([code])
        offer(1)
        assert poll() == ["t1"]
        # The pooled connection is on nodes[1], the first node of the list that answers.
        nodes[1].stop()
        try:
            offer(2)
            wait_for(lambda: queues.depths([code]).get(code) == 1, timeout=60, what="the offer on the queue")
            assert poll() == ["t2"]
            queues.ping()
        finally:
            nodes[1].start()
    finally:
        queues.close()


def test_the_unit_client_takes_a_node_list_and_skips_a_node_that_is_down(
    rabbit_cluster: list[RabbitNode], tmp_path: Path
) -> None:
    nodes = rabbit_cluster
    code = unique_unit()
    declare_unit_queue(nodes[0].amqp_url, code)
    offers = [task_offer(code, n) for n in range(1, 6)]
    publish(nodes[0].amqp_url, code, [encode(d) for d in offers])
    url = ";".join([down_node_url(), nodes[2].amqp_url])
    client = ClientProcess(
        ["--amqp-url", url, "--unit", code, "--deliver-to", "stdout", "--idle-exit", "2"], tmp_path / "c.log"
    )
    try:
        assert client.wait(timeout=60) == 0, client.log()
    finally:
        client.stop()
    assert client.documents() == offers
