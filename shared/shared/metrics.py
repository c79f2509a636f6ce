"""The shared Prometheus metric objects for messaging and the outbox (registered once, on import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter("docroute_events_published_total", "Messages the broker confirmed", ["exchange"])
PUBLISH_FAILURES = Counter(
    "docroute_publish_failures_total", "Publishes that failed after all retries", ["exchange", "reason"]
)
EVENTS_CONSUMED = Counter("docroute_events_consumed_total", "Messages handled and acked", ["queue"])
EVENTS_RETRIED = Counter(
    "docroute_events_retried_total", "Messages requeued after a handler error", ["queue"]
)
EVENTS_DEAD_LETTERED = Counter(
    "docroute_events_dead_lettered_total", "Messages sent to the dead-letter queue", ["queue", "reason"]
)
# "max" keeps the gauges meaningful when several gunicorn workers share PROMETHEUS_MULTIPROC_DIR.
OUTBOX_BACKLOG = Gauge(
    "docroute_outbox_backlog",
    "Outbox rows not yet confirmed by the broker",
    ["relay"],
    multiprocess_mode="max",
)
OUTBOX_OLDEST_AGE = Gauge(
    "docroute_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row",
    ["relay"],
    multiprocess_mode="max",
)
# "livesum": with several consumers per queue (and per process) the gauge counts the paused ones.
CONSUMER_PAUSED = Gauge(
    "docroute_consumer_paused",
    "Consumers of a queue waiting for an unavailable dependency (no message is taken meanwhile)",
    ["queue", "dependency"],
    multiprocess_mode="livesum",
)
CONSUMER_PAUSES = Counter(
    "docroute_consumer_pauses_total",
    "Times a consumer paused because a dependency was unavailable",
    ["queue", "dependency"],
)
CONSUMER_PAUSED_SECONDS = Counter(
    "docroute_consumer_paused_seconds_total",
    "Time consumers spent paused for an unavailable dependency",
    ["queue", "dependency"],
)
