"""Each service's broker user may touch exactly the names its code uses (finding 10).

The needs are computed from shared.naming (SUBSCRIPTIONS, PRODUCERS, the unit queues of the sample units)
following RabbitMQ's rules: declaring needs configure (and, for a queue with a dead-letter exchange, write on
that exchange and read on the queue; for an exchange with an alternate exchange, read on it and write on the
alternate), binding needs write on the queue and read on the exchange, publishing needs write on the
exchange, consuming and basic.get need read on the queue. The rendered Permission objects must grant every
need and nothing another service owns. The integration test then runs each service's real topology
declaration, publishing, consuming and DLQ replay as a user holding exactly those permissions.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import amqp.exceptions
import pytest
import yaml
from deploy_support import OVERLAYS, REPO, Manifest, one
from kombu import Connection
from shared.envelope import Envelope
from shared.messaging import (
    EventConsumer,
    PermanentError,
    Publisher,
    Subscription,
    declare_unit_queue,
    list_dlq,
    replay_dlq,
    wait_for_topology,
)
from shared.naming import (
    DEAD_LETTER_EXCHANGE,
    PRODUCERS,
    SUBSCRIPTIONS,
    TASKS_EXCHANGE,
    dlq_name,
    events_exchange,
    queue_name,
    replay_exchange,
    routing_key,
    unit_queue,
    unrouted_name,
)

SERVICES = ("intake", "routing", "archive")
RIGHTS = ("configure", "write", "read")
UNIT_CODES = tuple(
    unit["code"]
    for unit in yaml.safe_load((REPO / "samples" / "units.yaml").read_text(encoding="utf-8"))["units"]
)


@dataclass
class Needs:
    """The names one service must be allowed, per right, and the names it owns (declares)."""

    rights: dict[str, set[str]] = field(default_factory=lambda: {r: set() for r in RIGHTS})

    def add(self, right: str, *names: str) -> None:
        self.rights[right].update(names)

    @property
    def owned(self) -> set[str]:
        return self.rights["configure"]


def _own_queue(needs: Needs, queue: str, exchange: str) -> None:
    dlq, replay = dlq_name(queue), replay_exchange(queue)
    needs.add("configure", queue, dlq, replay)
    needs.add("write", DEAD_LETTER_EXCHANGE)  # declaring a queue with a dead-letter exchange
    needs.add("read", queue, dlq)  # the same declaration; consuming; `docroute dlq list`
    needs.add("write", queue, dlq)  # binding each to its exchange
    needs.add("read", exchange, DEAD_LETTER_EXCHANGE, replay)  # ... which needs read on the exchanges
    needs.add("write", replay)  # `docroute dlq replay` publishes through the replay exchange


def needs_of(service: str) -> Needs:
    needs = Needs()
    if service in PRODUCERS:
        exchange = events_exchange(service)
        unrouted = unrouted_name(exchange)  # an exchange and a queue of the same name
        needs.add("configure", exchange, unrouted)
        needs.add("read", exchange)  # declaring it with an alternate exchange
        needs.add("write", unrouted)  # ... and write on the alternate; binding the unrouted queue
        needs.add("read", unrouted)  # binding from the alternate exchange
        needs.add("write", exchange)  # publishing events
    for consumer, source, event, _version in SUBSCRIPTIONS:
        if consumer == service:
            _own_queue(needs, queue_name(consumer, source, event), events_exchange(source))
    if service == "routing":
        needs.add("configure", TASKS_EXCHANGE)
        needs.add("write", TASKS_EXCHANGE)  # publishing tasks
        for code in UNIT_CODES:
            _own_queue(needs, unit_queue(code), TASKS_EXCHANGE)
    return needs


def permissions(manifests: list[Manifest], service: str) -> dict[str, re.Pattern[str]]:
    spec = one(manifests, "Permission", f"svc-{service}")["spec"]
    assert spec["vhost"] == "docroute"
    return {right: re.compile(spec["permissions"][right]) for right in RIGHTS}


def allows(pattern: re.Pattern[str], name: str) -> bool:
    # RabbitMQ searches the pattern in the name (Erlang re:run), anchors are the pattern's business.
    return pattern.search(name) is not None


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_user_is_granted_what_its_code_uses(rendered, overlay, service):
    granted = permissions(rendered(overlay), service)
    for right, names in needs_of(service).rights.items():
        missing = sorted(name for name in names if not allows(granted[right], name))
        assert missing == [], f"svc-{service} lacks {right} on {missing}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_no_service_user_may_touch_another_services_names(rendered, overlay, service):
    granted = permissions(rendered(overlay), service)
    mine = needs_of(service)
    others = set().union(*(needs_of(other).owned for other in SERVICES if other != service))
    for right in RIGHTS:
        # What it may read of the others' is only what it binds its own queues to (their events exchange).
        allowed = mine.rights[right]
        overreach = sorted(name for name in others - allowed if allows(granted[right], name))
        assert overreach == [], f"svc-{service} may {right} {overreach} of another service"
    # Nor anything outside docroute's names, nor the default exchange (writing there reaches any queue).
    for name in ("amq.default", "amq.topic", "", "docroute.other", f"{service}x.events"):
        assert not any(allows(granted[right], name) for right in RIGHTS), name


def test_consumers_read_other_services_exchanges_only_to_bind():
    # The one cross-service right: read on the events exchange a service's queues are bound to.
    assert needs_of("archive").rights["read"] - needs_of("archive").owned == {
        DEAD_LETTER_EXCHANGE,
        events_exchange("intake"),
        events_exchange("routing"),
    }
    # Intake reads routing's task events to tell the senders 04, 05 and 06.
    assert needs_of("intake").rights["read"] - needs_of("intake").owned == {
        DEAD_LETTER_EXCHANGE,
        events_exchange("routing"),
    }


# --------------------------------------------------------------- the same permissions on the real broker


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"rabbitmqctl {args[0]} failed: {done.stdout}{done.stderr}"


@dataclass
class Broker:
    """A throwaway vhost with one user per service, holding the rendered production permissions."""

    admin_url: str
    urls: dict[str, str]


@pytest.fixture
def scoped_broker(rendered, amqp_vhost_factory: Callable[[], str]) -> Iterator[Broker]:
    admin_url = amqp_vhost_factory()
    parts = urlsplit(admin_url)
    vhost = unquote(parts.path.lstrip("/"))
    manifests = rendered("production")
    users: dict[str, str] = {}
    passwords: dict[str, str] = {}
    try:
        for service in SERVICES:
            user = f"docroute-test-{service}-{uuid.uuid4().hex[:8]}"
            password = secrets.token_hex(12)
            _rabbitmqctl("add_user", user, password)
            users[service] = user
            spec = one(manifests, "Permission", f"svc-{service}")["spec"]["permissions"]
            _rabbitmqctl("set_permissions", "-p", vhost, user, spec["configure"], spec["write"], spec["read"])
            passwords[service] = password
        # What the Messaging Topology Operator declares from the manifests: the exchanges.
        with Connection(admin_url) as conn:
            channel = conn.channel()
            for exchange in [m for m in manifests if m["kind"] == "Exchange"]:
                spec = exchange["spec"]
                channel.exchange_declare(
                    exchange=spec["name"],
                    type=spec["type"],
                    durable=True,
                    auto_delete=False,
                    arguments=spec.get("arguments"),
                )
            channel.close()
        host = f"{parts.hostname}:{parts.port or 5672}"
        urls = {
            service: f"amqp://{users[service]}:{passwords[service]}@{host}/{quote(vhost, safe='')}"
            for service in SERVICES
        }
        yield Broker(admin_url, urls)
    finally:
        for service in SERVICES:
            if service in users:
                subprocess.run(
                    ["rabbitmqctl", "-q", "delete_user", users[service]], capture_output=True, timeout=120
                )


def _refused(url: str, action: Callable[[object], object]) -> bool:
    """True when the broker refuses `action` on a fresh channel with 403 ACCESS_REFUSED."""
    with Connection(url) as conn:
        channel = conn.channel()
        try:
            action(channel)
            channel.basic_qos(0, 1, False)  # a round trip: an asynchronous refusal arrives before its answer
        except amqp.exceptions.AccessRefused:
            return True
        return False


def _event(kind: str, producer: str, **payload: object) -> Envelope:
    return Envelope.new(kind, payload, producer=producer)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_each_service_works_with_only_its_own_permissions(scoped_broker: Broker) -> None:
    urls = scoped_broker.urls
    stop = threading.Event()
    results: dict[str, bool] = {}

    def declare(service: str) -> None:
        results[service] = wait_for_topology(
            urls[service], stop, delivery_limit=5, service=service, max_backoff=0.5
        )

    # All three start together; intake waits for the consumer queues of routing and archive to exist.
    threads = [threading.Thread(target=declare, args=(service,), daemon=True) for service in SERVICES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stop.set()
    assert results == {"intake": True, "routing": True, "archive": True}
    with Connection(urls["routing"]) as conn:
        declare_unit_queue(conn, UNIT_CODES[0], delivery_limit=5)

    # Publishing: each to its own exchanges.
    registered = _event("intake.directive_registered", "intake", number="1393/CVT-CL", subject="Về việc …")
    with Publisher(urls["intake"]) as publisher:
        publisher.publish(
            exchange=events_exchange("intake"),
            routing_key=routing_key("intake", "directive_registered", 1),
            body=registered.to_bytes(),
            message_id=registered.id,
        )
    offered = _event("routing.task_offered", "routing", unit=UNIT_CODES[0])
    assigned = _event("routing.task_assigned", "routing", unit=UNIT_CODES[0])
    with Publisher(urls["routing"]) as publisher:
        publisher.publish(
            exchange=TASKS_EXCHANGE, routing_key=UNIT_CODES[0], body=offered.to_bytes(), message_id=offered.id
        )
        publisher.publish(
            exchange=events_exchange("routing"),
            routing_key=routing_key("routing", "task_assigned", 1),
            body=assigned.to_bytes(),
            message_id=assigned.id,
        )
    archived = _event("archive.record_archived", "archive")
    with Publisher(urls["archive"]) as publisher:  # nobody subscribes: kept by the alternate exchange
        publisher.publish(
            exchange=events_exchange("archive"),
            routing_key=routing_key("archive", "record_archived", 1),
            body=archived.to_bytes(),
            message_id=archived.id,
        )

    # Consuming: each from its own queues.
    def take(service: str, queue: str) -> Envelope:
        with Connection(urls[service]) as conn:
            channel = conn.channel()
            message = None
            for _ in range(50):
                message = channel.basic_get(queue, no_ack=False)
                if message is not None:
                    break
                threading.Event().wait(0.1)
            assert message is not None, f"{service} got nothing from {queue}"
            channel.basic_ack(message.delivery_tag)
            body = message.body
            return Envelope.from_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))

    assert take("routing", queue_name("routing", "intake", "directive_registered")).id == registered.id
    assert take("archive", queue_name("archive", "intake", "directive_registered")).id == registered.id
    assert take("routing", unit_queue(UNIT_CODES[0])).id == offered.id

    # A dead letter of archive's, listed and replayed by archive's own user, back to archive's queue only.
    queue = queue_name("archive", "routing", "task_assigned")

    def refuse(envelope: Envelope) -> None:
        raise PermanentError("not now")

    consumer = EventConsumer(
        urls["archive"],
        [Subscription(queue, events_exchange("routing"), routing_key("routing", "task_assigned", 1), refuse)],
    )
    runner = threading.Thread(target=consumer.run, args=(stop_consumer := threading.Event(),), daemon=True)
    runner.start()
    try:
        for _ in range(100):
            if list_dlq(urls["archive"], queue, 5):
                break
            threading.Event().wait(0.1)
    finally:
        stop_consumer.set()
        runner.join(10)
    assert [d.envelope.id for d in list_dlq(urls["archive"], queue, 5) if d.envelope] == [assigned.id]
    assert replay_dlq(urls["archive"], queue, 5) == 1
    assert take("archive", queue).id == assigned.id

    # And nothing of the others'.
    intake_events, routing_events = events_exchange("intake"), events_exchange("routing")
    forged = b"{}"
    assert _refused(urls["intake"], lambda ch: ch.basic_publish(amqp.Message(forged), routing_events, "x"))
    assert _refused(urls["routing"], lambda ch: ch.basic_publish(amqp.Message(forged), intake_events, "x"))
    assert _refused(
        urls["archive"], lambda ch: ch.basic_publish(amqp.Message(forged), TASKS_EXCHANGE, UNIT_CODES[0])
    )
    assert _refused(
        urls["archive"], lambda ch: ch.basic_publish(amqp.Message(forged), "", unit_queue(UNIT_CODES[0]))
    )
    assert _refused(
        urls["routing"], lambda ch: ch.basic_get(queue_name("archive", "intake", "directive_registered"))
    )
    assert _refused(
        urls["intake"], lambda ch: ch.basic_get(queue_name("routing", "intake", "directive_registered"))
    )
    assert _refused(
        urls["archive"], lambda ch: ch.queue_delete(queue_name("routing", "intake", "directive_registered"))
    )
    assert _refused(urls["intake"], lambda ch: ch.exchange_delete(routing_events))
    assert _refused(
        urls["routing"], lambda ch: ch.basic_publish(amqp.Message(forged), replay_exchange(queue), queue)
    )
