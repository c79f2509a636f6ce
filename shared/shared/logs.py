"""JSON log lines and the correlation id that ties an HTTP request to the events it causes."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

_CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "docroute_correlation_id", default=None
)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def new_correlation_id() -> str:
    """A fresh correlation id (uuid4, hex)."""
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The correlation id of the current request or message, or None outside any scope."""
    return _CORRELATION_ID.get()


def set_correlation_id(correlation_id: str | None) -> contextvars.Token[str | None]:
    """Set the correlation id for this context; pass the token to `reset_correlation_id` afterwards."""
    return _CORRELATION_ID.set(correlation_id)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    """Restore the correlation id that was current before `set_correlation_id`."""
    _CORRELATION_ID.reset(token)


@contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Run a block under `correlation_id` (a new one when None) and restore the previous id afterwards."""
    cid = correlation_id or new_correlation_id()
    token = _CORRELATION_ID.set(cid)
    try:
        yield cid
    finally:
        _CORRELATION_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line; Vietnamese text stays readable (ensure_ascii=False)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or current_correlation_id(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot encode must not make the log line disappear.
        return json.dumps(data, ensure_ascii=False, default=str)


class _DocrouteHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler configure_logging installed, so a second call replaces it instead of adding one."""


def configure_logging(level: str | int = "INFO", *, stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as JSON lines at `level`; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _DocrouteHandler):
            root.removeHandler(handler)
    handler = _DocrouteHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
