"""Decoding of the envelopes the routing service puts on a unit's task queue, and their hand-off form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TASK_OFFERED = "routing.task_offered"
TASK_REMINDER = "routing.task_reminder"
# The directive was revoked: the task document with status `cancelled`, `reason` and `revoked_at`.
TASK_CANCELLED = "routing.task_cancelled"
# The directive was updated: the task document as it is now, with `revision`, `changes` (field -> {from, to}),
# `reason` and `due_date_from` (the task's due date before, when the update moved it).
TASK_UPDATED = "routing.task_updated"
KNOWN_TYPES = frozenset({TASK_OFFERED, TASK_REMINDER, TASK_CANCELLED, TASK_UPDATED})
_REQUIRED_STR = ("id", "type", "occurred_at", "producer")


class MalformedMessage(ValueError):
    """The body is not an envelope this client can hand on; it belongs in the dead-letter queue."""


@dataclass(frozen=True)
class UnitMessage:
    """One decoded envelope; `document` is the whole envelope as received, handed on unchanged."""

    id: str
    type: str
    version: int
    correlation_id: str | None
    payload: dict[str, Any]
    document: dict[str, Any]

    @property
    def task_id(self) -> str | None:
        """The task the message is about: `payload.id` for an offer, a cancellation or an update,
        `payload.task_id` for a reminder."""
        raw = (
            self.payload.get("id")
            if self.type in (TASK_OFFERED, TASK_CANCELLED, TASK_UPDATED)
            else self.payload.get("task_id")
        )
        if raw is None and self.type == TASK_REMINDER:
            raw = self.payload.get("id")
        return None if raw is None else str(raw)

    @property
    def dedup_key(self) -> str:
        """What "already handed on" means: a task is offered once and cancelled once, each update is news
        once, but reminders repeat by design."""
        if self.type == TASK_OFFERED and self.task_id is not None:
            return f"task:{self.task_id}"
        if self.type == TASK_CANCELLED and self.task_id is not None:
            return f"cancelled:{self.task_id}"
        if self.type == TASK_UPDATED and self.task_id is not None:
            # Each revision of the directive is handed on once; a later revision is news again.
            return f"updated:{self.task_id}:{self.payload.get('revision')}"
        return f"message:{self.id}"

    def to_json(self) -> bytes:
        """One line of UTF-8 JSON (Vietnamese kept as is), the form stdout and HTTP hooks receive."""
        return json.dumps(self.document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _unit_code(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("code"), str):
        return str(value["code"])
    return None


def decode(body: bytes, *, unit: str) -> UnitMessage:
    """Parse and check an envelope; raise MalformedMessage naming the first problem found."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedMessage("envelope is not a JSON object")
    for field in _REQUIRED_STR:
        if not isinstance(document.get(field), str) or not document[field]:
            raise MalformedMessage(f"envelope field {field!r} must be a non-empty string")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MalformedMessage("envelope field 'version' must be a positive integer")
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise MalformedMessage("envelope field 'payload' must be an object")
    correlation_id = document.get("correlation_id")
    if correlation_id is not None and not isinstance(correlation_id, str):
        raise MalformedMessage("envelope field 'correlation_id' must be a string")
    message = UnitMessage(
        id=document["id"],
        type=document["type"],
        version=version,
        correlation_id=correlation_id,
        payload=payload,
        document=document,
    )
    if message.type not in KNOWN_TYPES:
        raise MalformedMessage(f"unsupported message type {message.type!r}")
    if message.task_id is None or not message.task_id.strip():
        raise MalformedMessage(f"{message.type} without a task id")
    addressed_to = _unit_code(payload.get("unit"))
    # A task for another unit must never reach this unit's systems, even if it was misrouted.
    if addressed_to is not None and addressed_to != unit:
        raise MalformedMessage(f"addressed to unit {addressed_to!r}, not {unit!r}")
    return message
