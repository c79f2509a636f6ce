"""Where a unit's messages go: one JSON line on stdout, or an HTTP POST to the unit's own system."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import BinaryIO, Protocol

from docroute_unit.messages import UnitMessage


class HandOffError(Exception):
    """The unit's side did not take the message this time; it will be offered again."""


class SinkClosed(Exception):
    """The unit's side is gone for good (stdout closed); the client must stop without acknowledging."""


class Sink(Protocol):
    def deliver(self, message: UnitMessage) -> None: ...


class StdoutSink:
    """Writes each message as one UTF-8 JSON line and flushes, so a pipe reader sees it at once."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def deliver(self, message: UnitMessage) -> None:
        try:
            self._stream.write(message.to_json() + b"\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError) as exc:  # ValueError: write to a closed file
            raise SinkClosed(f"stdout is closed: {exc}") from exc


class HttpSink:
    """POSTs the envelope to the unit's hook; any 2xx answer means the unit has it."""

    def __init__(self, url: str, *, unit: str, timeout: float = 10.0) -> None:
        self.url = url
        self.unit = unit
        self.timeout = timeout

    def deliver(self, message: UnitMessage) -> None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked (http/https) when configured
            self.url,
            data=message.to_json(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "docroute-unit",
                "X-Docroute-Unit": self.unit,
                "X-Docroute-Message-Type": message.type,
                # The hook may see a message twice (at-least-once); this key lets it drop the copy.
                "Idempotency-Key": message.dedup_key,
                **({"X-Correlation-ID": message.correlation_id} if message.correlation_id else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise HandOffError(f"hook answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise HandOffError(f"hook unreachable: {getattr(exc, 'reason', exc)}") from exc
        if not 200 <= status < 300:
            raise HandOffError(f"hook answered {status}")
