"""The message envelope every event travels in (id, type, version, time, correlation, producer, payload)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import json_bytes
from shared.logs import current_correlation_id, new_correlation_id


class MalformedMessage(ValueError):
    """The bytes are not a valid envelope; such a message is dead-lettered, never retried."""


def _require_str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{name}: must be a non-empty string")
    return value


@dataclass(frozen=True)
class Envelope:
    """One event on the wire; `payload` is validated by the consuming service's marshmallow schema."""

    id: str
    type: str
    version: int
    occurred_at: datetime
    correlation_id: str
    producer: str
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        """`<service>.<event_name>.v<N>`, the topic routing key of this event."""
        return f"{self.type}.v{self.version}"

    @classmethod
    def new(
        cls,
        type: str,
        payload: dict[str, Any],
        *,
        producer: str,
        version: int = 1,
        correlation_id: str | None = None,
    ) -> Envelope:
        """A new event now, carrying the current correlation id unless one is given."""
        return cls(
            id=str(uuid.uuid4()),
            type=type,
            version=version,
            occurred_at=datetime.now(UTC),
            correlation_id=correlation_id or current_correlation_id() or new_correlation_id(),
            producer=producer,
            payload=payload,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (occurred_at as ISO 8601 with offset)."""
        return {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "correlation_id": self.correlation_id,
            "producer": self.producer,
            "payload": self.payload,
        }

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON with Vietnamese text as written (shared.json_bytes: orjson, byte for byte what
        `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes)."""
        return json_bytes.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        """Validate a decoded envelope; raises MalformedMessage naming the first bad field."""
        if not isinstance(data, dict):
            raise MalformedMessage("envelope: must be a JSON object")
        version = data.get("version")
        # bool is an int subclass; `true` is not a version.
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise MalformedMessage("version: must be a positive integer")
        raw_time = _require_str(data, "occurred_at")
        try:
            occurred_at = datetime.fromisoformat(raw_time)
        except ValueError as exc:
            raise MalformedMessage("occurred_at: must be an ISO 8601 date-time") from exc
        if occurred_at.tzinfo is None:
            raise MalformedMessage("occurred_at: must carry a UTC offset")
        payload = data.get("payload")
        if not isinstance(payload, dict):
            raise MalformedMessage("payload: must be a JSON object")
        return cls(
            id=_require_str(data, "id"),
            type=_require_str(data, "type"),
            version=version,
            occurred_at=occurred_at,
            correlation_id=_require_str(data, "correlation_id"),
            producer=_require_str(data, "producer"),
            payload=payload,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Decode and validate UTF-8 JSON bytes; raises MalformedMessage for anything else."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedMessage(f"envelope: not UTF-8 JSON ({exc})") from exc
        return cls.from_dict(data)
