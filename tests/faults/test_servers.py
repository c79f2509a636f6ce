"""The private servers of the fault runs: our own node and cluster, never the machine's, and they stop,
restart and come back on the same ports."""

from __future__ import annotations

import pika
import pytest
import sqlalchemy as sa

from chaos.servers import PgCluster, RabbitNode, ServerError, port_answers

pytestmark = pytest.mark.e2e


def test_rabbit_node_is_our_own_and_comes_back_after_a_restart(rabbit_node: RabbitNode) -> None:
    assert rabbit_node.amqp_port != 5672
    status = rabbit_node.ctl("status")
    assert rabbit_node.name in status and "rabbit@localhost" not in status
    conn = pika.BlockingConnection(pika.URLParameters(rabbit_node.amqp_url))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.queue_declare("chaos.probe", durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_publish("", "chaos.probe", b"kept", pika.BasicProperties(delivery_mode=2))
    conn.close()

    rabbit_node.stop()
    assert not port_answers(rabbit_node.amqp_port)
    rabbit_node.start()

    conn = pika.BlockingConnection(pika.URLParameters(rabbit_node.amqp_url))
    method, _, body = conn.channel().basic_get("chaos.probe", auto_ack=True)
    conn.close()
    assert method is not None and body == b"kept"  # same data folder: a restart, not a new node


def test_postgresql_cluster_refuses_while_stopped_and_keeps_its_data(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database("chaos_probe")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (v text)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('Sở Thông tin và Truyền thông')"))

    pg_cluster.stop()
    with pytest.raises(sa.exc.OperationalError), engine.connect():
        pass
    pg_cluster.start()

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT v FROM t")).scalar_one() == "Sở Thông tin và Truyền thông"
    engine.dispose()


def test_a_node_that_cannot_start_says_why(tmp_path_factory: pytest.TempPathFactory) -> None:
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    busy = RabbitNode(tmp_path_factory.mktemp("rabbit-busy"), amqp_port=node.amqp_port)
    try:
        node.start()
        with pytest.raises(ServerError):
            busy.start(timeout=60)
    finally:
        busy.close()
        node.close()


def test_two_nodes_with_one_cookie_form_a_cluster(tmp_path_factory: pytest.TempPathFactory) -> None:
    # What a multi-node test builds on: nodes of our own, joined; the machine's node is never a member.
    first = RabbitNode(tmp_path_factory.mktemp("rabbit-a"))
    second = RabbitNode(tmp_path_factory.mktemp("rabbit-b"), cookie=first.cookie)
    try:
        first.start()
        second.start()
        second.join(first)
        assert first.cluster_nodes() == sorted([first.name, second.name])
        assert "rabbit@localhost" not in second.cluster_nodes()
    finally:
        second.close()
        first.close()
