"""The scale-out run: docroute as two replicas of every API and worker (two `docroute up`, each preferring a
different node of a three-node RabbitMQ cluster through its `;`-separated DOCROUTE_AMQP_URL) against one
PostgreSQL cluster and the S3 server, while directives flow and the cluster is hurt: the node that leads the
busiest queues stopped and started again, a node paused (SIGSTOP) for longer than the net tick and resumed,
and kill -9 of one replica of each worker.

Reconciled as the fault run is (chaos.reconcile), plus two checks of its own after every fault:

- every worker process of both replicas holds a broker connection again and every consumer queue has as
  many consumers as before the faults (each process reconnected by itself);
- a publish audit: a quorum queue bound to every events exchange and every unit's task routing key gets a
  copy of every message the relays publish, with the relay that published it (the outbox's publisher
  header). A message id published more than once is a re-send the relay's at-least-once contract allows
  only when its first publisher died before marking the row (kill -9) or lost the broker's confirm (the same
  relay sends again); one published by two relays that both lived is a double publish, counted as
  duplicated.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psutil
from shared.naming import PRODUCERS, SUBSCRIPTIONS, TASKS_EXCHANGE, events_exchange, queue_name
from shared.outbox import PUBLISHER_HEADER

from chaos.faults import BACKLOG_QUEUES, Fault
from chaos.reconcile import Findings
from chaos.run import Config, Run, progress
from chaos.servers import (
    NET_TICKTIME,
    MotoS3,
    PgCluster,
    RabbitNode,
    ServerError,
    close_cluster,
    start_cluster,
    wait_for,
)
from chaos.stack import SERVICES, Servers, Stack

AUDIT_QUEUE = "chaos.publish-audit"
REPLICAS = 2
#: How long a node stays stopped, or paused (at least twice the net tick, so its peers declare it down).
SCALEOUT_OUTAGE = 2.5 * NET_TICKTIME


@dataclass
class ClusterServers(Servers):
    """The run's servers with a three-node cluster; `rabbit` is the node the run's own checks talk to (one
    that is neither stopped nor paused), `nodes` all of them."""

    nodes: list[RabbitNode] = field(default_factory=list)

    @classmethod
    def start_cluster(cls, workdir: Path) -> ClusterServers:
        nodes = start_cluster(workdir / "rabbitmq")
        servers = cls(
            workdir=workdir,
            rabbit=nodes[0],
            postgres=PgCluster(workdir / "postgres"),
            s3=MotoS3(workdir / "s3"),
            nodes=nodes,
        )
        try:
            servers.postgres.start()
            servers.s3.start()
        except BaseException:
            servers.close()
            raise
        return servers

    def url_list(self, first: int) -> str:
        """Every node's URL, starting with node `first`: what one replica gets as DOCROUTE_AMQP_URL."""
        order = self.nodes[first:] + self.nodes[:first]
        return ";".join(node.amqp_url for node in order)

    def node(self, name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.name == name)

    def avoid(self, node: RabbitNode) -> None:
        """The run's checks use another node while `node` is hurt."""
        if self.rabbit is node:
            self.rabbit = next(other for other in self.nodes if other is not node)

    def whole(self) -> bool:
        """Every node running and each sees all of them in its cluster."""
        names = sorted(node.name for node in self.nodes)
        try:
            return all(node.running() and node.cluster_nodes() == names for node in self.nodes)
        except ServerError:
            return False

    def close(self) -> None:
        close_cluster(self.nodes)
        super().close()


class PublishAudit:
    """A copy of every relayed message (see the module docstring), and who published each."""

    def __init__(self) -> None:
        self.publishers: dict[str, list[str]] = defaultdict(list)  # message id → publishers, in order
        self.unattributed = 0
        self._touched: set[str] = set()  # message ids with a copy since the last judge()
        self._verdicts: dict[str, str] = {}  # message id → why it is a double publish ("" when it is not)

    def declare(self, amqp_url: str, units: Iterable[str]) -> None:
        with _channel(amqp_url) as channel:
            channel.queue_declare(AUDIT_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
            for producer in PRODUCERS:
                channel.queue_bind(AUDIT_QUEUE, events_exchange(producer), routing_key="#")
            for code in units:
                channel.queue_bind(AUDIT_QUEUE, TASKS_EXCHANGE, routing_key=code)

    def drain(self, amqp_url: str) -> None:
        with _channel(amqp_url) as channel:
            while True:
                method, properties, _body = channel.basic_get(AUDIT_QUEUE, auto_ack=True)
                if method is None:
                    return
                publisher = (properties.headers or {}).get(PUBLISHER_HEADER)
                if not properties.message_id or not publisher:
                    self.unattributed += 1
                    continue
                self.publishers[str(properties.message_id)].append(str(publisher))
                self._touched.add(str(properties.message_id))

    def published(self) -> int:
        return sum(len(p) for p in self.publishers.values())

    def by_publisher(self) -> Counter[str]:
        return Counter(p for publishers in self.publishers.values() for p in publishers)

    def judge(self, killed: set[int], in_doubt: dict[str, set[str]]) -> tuple[list[str], Counter[str]]:
        """(double publishes, re-sends by kind) over every message seen so far.

        A message published by several relay processes is accounted for when at most one of them published
        it cleanly: every other one either declared it in doubt (sent without a confirm: it logs the ids, see
        shared.outbox) or was killed. Two clean publishers mean two relays held the row at once: a double
        publish. `killed` holds the relays killed so far; a message is judged again whenever a copy of it
        arrives, so a relay killed later does not excuse a copy judged before."""
        resent: Counter[str] = Counter()
        for message_id in self._touched:
            publishers = self.publishers[message_id]
            distinct = list(dict.fromkeys(publishers))
            if len(distinct) < 2:
                self._verdicts[message_id] = ""
                continue
            clean = [
                p for p in distinct if _pid(p) not in killed and message_id not in in_doubt.get(p, set())
            ]
            self._verdicts[message_id] = (
                f"message {message_id} published by two relays that both held it: {', '.join(clean)}"
                if len(clean) > 1
                else ""
            )
        self._touched = set()
        for message_id, publishers in self.publishers.items():
            relays = set(publishers)
            if len(publishers) > len(relays):
                same = len(publishers) - len(relays)
                resent["by the same relay (sent again after a lost or late confirm)"] += same
            if len(relays) > 1 and not self._verdicts.get(message_id):
                resent["by another relay (the first sent it without a confirm, or was killed)"] += (
                    len(relays) - 1
                )
        return [v for v in self._verdicts.values() if v], resent


def _pid(publisher: str) -> int:
    """The pid in a publisher header `host/pid/relay`."""
    parts = publisher.split("/")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


@contextlib.contextmanager
def _channel(amqp_url: str) -> Iterator[Any]:
    params = pika.URLParameters(amqp_url)
    params.socket_timeout = 10
    conn = pika.BlockingConnection(params)
    try:
        yield conn.channel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def consumer_counts(node: RabbitNode) -> dict[str, int]:
    """{consumer queue: consumers} as the cluster reports them."""
    wanted = {queue_name(c, s, e) for c, s, e, _ in SUBSCRIPTIONS}
    out: dict[str, int] = {}
    for line in node.ctl("list_queues", "-p", "/", "--no-table-headers", "name", "consumers").splitlines():
        name, _, count = line.rpartition("\t")
        if name in wanted and count.strip().isdigit():
            out[name] = int(count)
    return out


class ClusterRun(Run):
    """A fault run over the cluster with REPLICAS `docroute up` (use as a context manager)."""

    servers: ClusterServers

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.audit = PublishAudit()
        self.killed: set[int] = set()
        self.baseline_consumers: dict[str, int] = {}

    def start_servers(self) -> None:
        progress(f"starting a three-node RabbitMQ cluster, PostgreSQL and the S3 server under {self.workdir}")
        self._started.append("servers")
        self.servers = ClusterServers.start_cluster(self.workdir / "servers")
        progress(
            "RabbitMQ "
            + ", ".join(f"{n.name} :{n.amqp_port}" for n in self.servers.nodes)
            + f"; PostgreSQL :{self.servers.postgres.port}, S3 :{self.servers.s3.port}"
        )

    def start_stacks(self) -> None:
        trust = self.workload.write_trust_store(self.workdir / "trust.pem")
        first: Stack | None = None
        for index in range(REPLICAS):
            stack = Stack(
                servers=self.servers,
                workdir=self.workdir / f"replica{index + 1}",
                trust_store=trust,
                extra_env={"DOCROUTE_AMQP_URL": self.servers.url_list(index)},
            )
            if first is not None:
                # One database per service for both replicas, and tokens either replica accepts.
                stack.jwt_secret = first.jwt_secret
                stack.database_urls = first.database_urls
            self.stacks.append(stack)
            progress(
                f"replica {index + 1}: docroute up on ports {stack.base_port}-{stack.base_port + 2}, "
                f"broker first {self.servers.nodes[index].name}"
            )
            stack.up()
            first = first or stack
        assert first is not None
        self.stack = first

    def setup(self) -> None:
        super().setup()
        self.audit.declare(self.servers.rabbit.amqp_url, self.units)
        # Every replica's consumers on every consumer queue (the archive's connect after their warm-up).
        wanted = {queue_name(c, s, e) for c, s, e, _ in SUBSCRIPTIONS}

        def all_consuming() -> bool:
            self.baseline_consumers = consumer_counts(self.servers.rabbit)
            counts = self.baseline_consumers
            return set(counts) == wanted and min(counts.values()) >= REPLICAS

        wait_for(all_consuming, timeout=120, what="both replicas consuming every queue", interval=1.0)
        progress(f"consumers per queue, both replicas: {self.baseline_consumers}")

    def note_killed(self, pids: Iterable[int]) -> None:
        self.killed.update(pids)

    def reconcile(self, *, full: bool = False) -> Findings:
        found = super().reconcile(full=full)
        self.audit.drain(self.servers.rabbit.amqp_url)
        doubles, resent = self.audit.judge(self.killed, self.in_doubt())
        found.duplicated += doubles
        if self.audit.unattributed:
            found.other.append(f"{self.audit.unattributed} relayed message(s) without a publisher header")
        found.other += self.not_reconnected()
        self.relay_audit = {
            "published": self.audit.published(),
            "message_ids": len(self.audit.publishers),
            "by_publisher": dict(self.audit.by_publisher()),
            "resent": dict(resent),
            "published_by_two_relays_holding_it": len(doubles),
        }
        return found

    def in_doubt(self) -> dict[str, set[str]]:
        """{publisher: message ids it sent without a confirm}, from the relays' log lines (shared.outbox)."""
        found: dict[str, set[str]] = defaultdict(set)
        for stack in self.stacks:
            with contextlib.suppress(OSError), stack.log.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if '"in_doubt"' not in line:
                        continue
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        entry = json.loads(line)
                        found[str(entry["publisher"])].update(str(i) for i in entry["in_doubt"])
        return found

    def not_reconnected(self) -> list[str]:
        """Processes without a broker connection, and consumer queues with fewer consumers than at start."""
        problems: list[str] = []
        ports = {node.amqp_port for node in self.servers.nodes}
        for index, stack in enumerate(self.stacks):
            for service, pid in stack.worker_pids().items():
                try:
                    conns = psutil.Process(pid).net_connections(kind="tcp")
                except psutil.Error:
                    continue
                if not any(c.raddr and c.raddr.port in ports and c.status == "ESTABLISHED" for c in conns):
                    problems.append(f"replica {index + 1} {service} worker {pid} holds no broker connection")
        now = consumer_counts(self.servers.rabbit)
        problems += [
            f"{queue}: {now.get(queue, 0)} consumer(s), {count} before the faults"
            for queue, count in self.baseline_consumers.items()
            if now.get(queue, 0) < count
        ]
        return problems


# ------------------------------------------------------------------------------------------- faults


def _cluster(run: Run) -> ClusterRun:
    if not isinstance(run, ClusterRun):
        raise ServerError("this fault needs the scale-out run (a cluster and two replicas)")
    return run


def _wait_whole(run: ClusterRun) -> None:
    wait_for(run.servers.whole, timeout=180, what="all three nodes back in one cluster", interval=1.0)


def _stop_leader(run: Run) -> None:
    cluster = _cluster(run)
    leaders = cluster.servers.rabbit.queue_leaders()
    lead = leaders[BACKLOG_QUEUES[0]]
    led = sorted(queue for queue, node in leaders.items() if node == lead)
    node = cluster.servers.node(lead)
    cluster.servers.avoid(node)
    run.note(f"stopping {lead}, leader of {len(led)} of {len(leaders)} queues ({', '.join(BACKLOG_QUEUES)})")
    node.stop()
    run.hold(cluster.config.outage)
    node.start()
    _wait_whole(cluster)
    run.note(f"{lead} started again and back in the cluster")


def _pause_node(run: Run) -> None:
    cluster = _cluster(run)
    leaders = cluster.servers.rabbit.queue_leaders()
    lead, led = Counter(leaders.values()).most_common(1)[0]
    node = cluster.servers.node(lead)
    cluster.servers.avoid(node)
    seconds = max(cluster.config.outage, NET_TICKTIME * 2)
    run.note(f"SIGSTOP to {lead} (leader of {led} queues) for {seconds:.0f} s; net tick {NET_TICKTIME:.0f} s")
    node.pause()
    try:
        run.hold(seconds)
    finally:
        node.resume()
    _wait_whole(cluster)
    run.note(f"{lead} resumed and back in the cluster")


def _kill_one_replica(run: Run) -> None:
    cluster = _cluster(run)
    pids = cluster.stacks[-1].worker_pids()
    if len(pids) != len(SERVICES):
        raise ServerError(f"replica {len(cluster.stacks)} runs workers {sorted(pids)}, not all three")
    cluster.note_killed(pids.values())
    run.note(
        f"kill -9 replica {len(cluster.stacks)}'s workers "
        + ", ".join(f"{service} {pid}" for service, pid in sorted(pids.items()))
    )
    for pid in pids.values():
        run.signal(pid, signal.SIGKILL)


SCALEOUT_FAULTS: tuple[Fault, ...] = (
    Fault(
        "stop the busiest queues' leader",
        "the node leading the directive queues stopped, then started",
        True,
        _stop_leader,
    ),
    Fault(
        "pause a node past the net tick",
        "SIGSTOP of the node leading most queues, then SIGCONT",
        True,
        _pause_node,
    ),
    Fault("kill -9 a replica's workers", "kill -9 of one replica of each worker", True, _kill_one_replica),
)


def audit_summary(run: ClusterRun) -> str:
    audit = getattr(run, "relay_audit", None)
    return json.dumps(audit, ensure_ascii=False) if audit else "no publish audit"
