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
from shared.naming import SUBSCRIPTIONS, dlq_name, queue_name, unit_queue

from chaos.servers import RABBITMQ_BIN, RabbitNode, ServerError, wait_for

pytestmark = pytest.mark.integration

UNITS = ("BPTV", "PVHTT.DONGXOAI", "SYT")


def start_node(workdir: Path, cookie: str, attempts: int = 3) -> RabbitNode:
    """A started private node. Its ports are picked free but not reserved, so another process on the machine
    may take one before the node binds it: then a new node, on new ports, tries again."""
    for attempt in range(1, attempts + 1):
        node = RabbitNode(workdir / f"try{attempt}", cookie=cookie)
        try:
            node.start()
            return node
        except ServerError:
            node.close()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    """Three private nodes (own names, AMQP and distribution ports, data folders), one Erlang cookie, joined
    into one cluster; stopped and removed at the end."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.skip(f"no RabbitMQ server under {RABBITMQ_BIN}")
    base = tmp_path_factory.mktemp("rabbit-cluster")
    cookie = secrets.token_hex(16).upper()
    nodes: list[RabbitNode] = []
    try:
        for i in range(3):
            nodes.append(start_node(base / f"node{i}", cookie))
        first = nodes[0]
        for node in nodes[1:]:
            node.join(first)
        expected = sorted(n.name for n in nodes)
        wait_for(lambda: first.cluster_nodes() == expected, timeout=60, what="three nodes in the cluster")
        yield nodes
    finally:
        for node in reversed(nodes):
            try:
                node.close()
            except ServerError:
                node.kill()
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
