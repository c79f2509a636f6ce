"""Wire names (exchanges, routing keys, queues): one rule, defined once, pinned by a test."""

from __future__ import annotations

DEAD_LETTER_EXCHANGE = "docroute.dlx"
TASKS_EXCHANGE = "routing.tasks"


def events_exchange(service: str) -> str:
    """The topic exchange a service publishes its events to."""
    return f"{service}.events"


def routing_key(service: str, event: str, version: int) -> str:
    """The routing key of one version of one event."""
    return f"{service}.{event}.v{version}"


def queue_name(consumer: str, source: str, event: str) -> str:
    """The queue a consuming service reads one source service's event from."""
    return f"{consumer}.{source}.{event}"


def dlq_name(queue: str) -> str:
    """The dead-letter queue of a queue (also the dead-letter routing key on DEAD_LETTER_EXCHANGE)."""
    return f"{queue}.dlq"


def replay_exchange(queue: str) -> str:
    """The direct exchange its owning service replays a queue's dead letters through (key: the queue name).

    The owner is the queue's first segment (`archive.routing.task_assigned` → `archive.replay`), so a
    service's broker user replays into its own queues without writing to another service's exchange.
    """
    return f"{queue.split('.', 1)[0]}.replay"


def unit_queue(code: str) -> str:
    """The task queue of one recipient unit, bound to TASKS_EXCHANGE with the unit code as routing key."""
    return f"{TASKS_EXCHANGE}.{code}"


def unrouted_name(exchange: str) -> str:
    """The alternate exchange (and its queue) that keeps events no consumer queue is bound for."""
    return f"{exchange}.unrouted"


def is_events_exchange(exchange: str) -> bool:
    """True for the `<service>.events` exchanges (topic, with an alternate exchange)."""
    return exchange.endswith(".events") and exchange.count(".") == 1


#: Every (consumer, source, event, version) of the system: the consumer queues that must exist before a
#: producer's first publish, or that event would miss them. One table, so that whichever worker starts
#: first declares them all and no start-up order loses an event.
SUBSCRIPTIONS: tuple[tuple[str, str, str, int], ...] = (
    ("routing", "intake", "directive_registered", 1),
    ("routing", "intake", "directive_revoked", 1),
    ("routing", "intake", "directive_rejected", 1),
    ("routing", "intake", "directive_updated", 1),
    ("routing", "intake", "directive_replaced", 1),
    ("archive", "intake", "directive_registered", 1),
    ("archive", "intake", "directive_revoked", 1),
    ("archive", "intake", "directive_updated", 1),
    ("archive", "intake", "directive_replaced", 1),
    ("archive", "routing", "task_assigned", 1),
    ("archive", "routing", "tasks_assigned", 1),
    ("archive", "routing", "task_status_changed", 1),
    ("archive", "routing", "tasks_acknowledged", 1),
    ("archive", "routing", "task_overdue", 1),
    # Intake tells a directive's sender what became of it (statuses 04, 05, 06) from routing's progress.
    ("intake", "routing", "tasks_assigned", 1),
    ("intake", "routing", "task_assigned", 1),
    ("intake", "routing", "tasks_acknowledged", 1),
    ("intake", "routing", "task_status_changed", 1),
)

#: Services that publish to a `<service>.events` exchange.
PRODUCERS: tuple[str, ...] = ("intake", "routing", "archive")
