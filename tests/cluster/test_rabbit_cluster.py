"""A three-node RabbitMQ cluster of our own (never the machine's node): docroute's whole topology declared on
it is quorum queues replicated on all three nodes, and a queue keeps its messages when its leader stops."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from collections.abc import Iterator

import pytest
from kombu import Connection
from routing.adapters.unit_queue import KombuUnitQueues
from shared.messaging import Publisher, declare_topology
from shared.naming import SUBSCRIPTIONS, dlq_name, queue_name, unit_queue

from chaos.servers import RABBITMQ_BIN, RabbitNode, ServerError, wait_for

pytestmark = pytest.mark.integration

UNITS = ("BPTV", "PVHTT.DONGXOAI", "SYT")


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    """Three private nodes (own names, AMQP and distribution ports, data folders), one Erlang cookie, joined
    into one cluster; stopped and removed at the end."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.skip(f"no RabbitMQ server under {RABBITMQ_BIN}")
    base = tmp_path_factory.mktemp("rabbit-cluster")
    cookie = secrets.token_hex(16).upper()
    nodes = [RabbitNode(base / f"node{i}", cookie=cookie) for i in range(3)]
    try:
        for node in nodes:
            node.start()
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
