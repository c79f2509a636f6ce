"""Webhook delivery: a worker loop that fans statuses out to subscriptions and sends them, signed.

It runs in intake's worker, never in a request, so a slow or dead receiver never slows intake or routing.
Each delivery is signed the Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature), sent
in order per directive, retried with capped exponential backoff, and dead-lettered when its window ends;
a 410 Gone disables the subscription. Secrets are never logged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Engine

from intake.adapters.secret_box import SecretBox, reseal_all
from intake.adapters.status_store import StatusStore, StatusUpdate
from intake.adapters.webhook_http import DeliveryFailed, TargetPolicy, post
from intake.adapters.webhook_store import Delivery, WebhookStore
from intake.domain.edxml import Organ
from intake.domain.webhooks import RetryPolicy, UnsafeTarget, sign

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = Counter(
    "docroute_intake_webhook_attempts_total", "Webhook delivery attempts by outcome.", ["outcome"]
)
EVENT_TYPE = "directive.status"
USER_AGENT = "docroute-webhooks/1"

Sender = Callable[[str, bytes, dict[str, str]], int]


def json_body(update: StatusUpdate, sender: Organ) -> bytes:
    """The JSON webhook body: {type, timestamp, data} with data the pull endpoint's item."""
    staff = update.staff
    data: dict[str, Any] = {
        "id": update.id,
        "cursor": update.cursor,
        "directive_id": update.directive_id,
        "status_code": update.status_code,
        "description": update.description,
        "occurred_at": update.occurred_at.isoformat(),
        "staff": None
        if staff is None
        else {
            "department": staff.department,
            "staff": staff.staff,
            "mobile": staff.mobile,
            "email": staff.email,
        },
        "sender": update.response_for.organ_id,
        "document_id": update.response_for.document_id,
        "packet": update.packet(sender),
    }
    envelope = {"type": EVENT_TYPE, "timestamp": update.occurred_at.isoformat(), "data": data}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def request_of(
    delivery: Delivery, update: StatusUpdate, sender: Organ, *, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt (a new timestamp and signature each time, the same id)."""
    if delivery.format == "edxml":
        body = update.packet(sender).encode("utf-8")
        content_type = "application/xml; charset=utf-8"
    else:
        body = json_body(update, sender)
        content_type = "application/json"
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(delivery.secret, delivery.id, timestamp, body),
    }
    return body, headers


@dataclass
class WebhookDeliverer:
    """One round: fan out new statuses, lease what is due, send each, record the outcome."""

    engine: Engine
    sender: Organ
    policy: TargetPolicy
    retry: RetryPolicy
    secrets: SecretBox
    send: Sender | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    batch: int = 20

    def __post_init__(self) -> None:
        self.store = WebhookStore(self.engine, self.secrets)
        self.statuses = StatusStore(self.engine)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if self.send is not None:
            return self.send(url, body, headers)
        return post(url, body, headers, policy=self.policy)

    def reseal(self) -> int:
        """Re-encrypts stored secrets under the current key (after a rotation, or rows in clear)."""
        changed = reseal_all(self.engine, self.secrets)
        if changed:
            log.info("re-encrypted %d webhook secret(s) under the current key", changed)
        return changed

    def round(self) -> int:
        """Sends what is due now; answers how many attempts were made."""
        self.store.fan_out(now=self.clock())
        # A lease comfortably longer than one attempt can take, so a live worker never loses its lease.
        lease = timedelta(seconds=self.policy.timeout * 3 + 5)
        due = self.store.lease_due(now=self.clock(), lease=lease, limit=self.batch)
        if not due:
            return 0
        with self.engine.connect() as conn:
            updates = self.statuses.get_many(conn, [d.status_update_id for d in due])
        for delivery in due:
            self.attempt(delivery, updates[delivery.status_update_id])
        return len(due)

    def attempt(self, delivery: Delivery, update: StatusUpdate) -> None:
        now = self.clock()
        body, headers = request_of(delivery, update, self.sender, now=now)
        try:
            status = self._post(delivery.url, body, headers)
        except (DeliveryFailed, UnsafeTarget) as exc:
            code = exc.status if isinstance(exc, DeliveryFailed) else None
            self._failed(delivery, code, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any failure of one attempt is a failed attempt
            self._failed(delivery, None, f"{type(exc).__name__}: {exc}")
            return
        self.store.delivered(delivery, status=status, now=self.clock())
        WEBHOOK_ATTEMPTS.labels("delivered").inc()
        log.info(
            "webhook delivered",
            extra={
                "webhook_id": delivery.id,
                "subscription": delivery.subscription_id,
                "http_status": status,
            },
        )

    def _failed(self, delivery: Delivery, status: int | None, error: str) -> None:
        now = self.clock()
        if status == 410:
            # The receiver says it is gone for good: stop the subscription instead of retrying for a day.
            self.store.failed(delivery, status=status, error=error, now=now, retry_at=None)
            self.store.disable(delivery.subscription_id, "the receiver answered 410 Gone")
            WEBHOOK_ATTEMPTS.labels("gone").inc()
            log.warning("webhook receiver answered 410; subscription %s disabled", delivery.subscription_id)
            return
        first = delivery.first_attempt_at or now
        retry_at = self.retry.next_attempt(first, now, delivery.attempts + 1)
        self.store.failed(delivery, status=status, error=error, now=now, retry_at=retry_at)
        WEBHOOK_ATTEMPTS.labels("failed" if retry_at is not None else "dead").inc()
        log.warning(
            "webhook attempt failed" if retry_at is not None else "webhook dead-lettered",
            extra={
                "webhook_id": delivery.id,
                "subscription": delivery.subscription_id,
                "attempts": delivery.attempts + 1,
                "error": error[:300],
            },
        )


@dataclass
class WebhookWorker:
    """The worker part: rounds until stopped, idling `interval` when nothing was due."""

    deliverer: WebhookDeliverer
    interval: float = 1.0

    def run(self, stop: threading.Event) -> None:
        backoff = self.interval
        resealed = False
        while not stop.is_set():
            try:
                if not resealed:
                    self.deliverer.reseal()
                    resealed = True
                sent = self.deliverer.round()
                backoff = self.interval
            except Exception:
                # The database may be down: log, back off, keep going; nothing is lost (all state is rows).
                log.exception("webhook round failed; retrying")
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not sent:
                stop.wait(self.interval)
