"""kombu messaging: topology, a confirming publisher, an ack/reject/dead-letter consumer base, DLQ tools.

The modules below hold one part each; this package re-exports their public names, so callers keep
`from shared.messaging import X`.
"""

from shared.messaging.broker import body_bytes, connect_any, is_amqp_url
from shared.messaging.consuming import (
    ATTEMPTS_HEADER,
    ORIGIN_EXCHANGE_HEADER,
    ORIGIN_ROUTING_KEY_HEADER,
    EventConsumer,
    PermanentError,
    Subscription,
)
from shared.messaging.dead_letters import DeadLetter, list_dlq, replay_dlq
from shared.messaging.memory import install as _install_memory_transport
from shared.messaging.outages import (
    BROKER,
    DATABASE,
    OBJECT_STORE,
    DependencyUnavailable,
    Probe,
    classify_failure,
    database_probe,
)
from shared.messaging.publishing import BatchResult, OutgoingMessage, Publisher, PublishError, Unroutable
from shared.messaging.relay import RelayWorker
from shared.messaging.topology import (
    UNROUTED_MAX_LENGTH,
    TopologyNotReady,
    declare_consumer_queue,
    declare_events_exchange,
    declare_topology,
    declare_unit_queue,
    wait_for_topology,
)

_install_memory_transport()

__all__ = [
    "ATTEMPTS_HEADER",
    "BROKER",
    "DATABASE",
    "OBJECT_STORE",
    "ORIGIN_EXCHANGE_HEADER",
    "ORIGIN_ROUTING_KEY_HEADER",
    "UNROUTED_MAX_LENGTH",
    "BatchResult",
    "DeadLetter",
    "DependencyUnavailable",
    "EventConsumer",
    "OutgoingMessage",
    "PermanentError",
    "Probe",
    "PublishError",
    "Publisher",
    "RelayWorker",
    "Subscription",
    "TopologyNotReady",
    "Unroutable",
    "body_bytes",
    "classify_failure",
    "connect_any",
    "database_probe",
    "declare_consumer_queue",
    "declare_events_exchange",
    "declare_topology",
    "declare_unit_queue",
    "is_amqp_url",
    "list_dlq",
    "replay_dlq",
    "wait_for_topology",
]
