"""What the messaging modules share about the broker: URL kinds, connection errors, channels, bodies."""

# kombu ships py.typed but leaves most functions unannotated; strict mode would flag every call into it.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import amqp.exceptions
from kombu.connection import Connection
from kombu.exceptions import KombuError
from kombu.transport.base import Message


def connect_any(conn: Connection) -> None:
    """Connect to the first node of `conn` that answers, one attempt each, without sleeping in between.

    A `;`-separated URL (`amqp://node1/vh;amqp://node2/vh`) lists a cluster's nodes; kombu moves to the next
    only on a retry, so a single attempt (`max_retries=0`) would try the first node alone forever."""
    conn.ensure_connection(
        max_retries=max(len(conn.alt), 1) - 1, interval_start=0, interval_step=0, interval_max=0
    )


def is_amqp_url(url: str) -> bool:
    """True for a real AMQP broker (quorum queues, confirms, dead-lettering); False for memory:// etc."""
    return urlsplit(url).scheme in {"amqp", "amqps", "pyamqp"}


def connection_errors() -> tuple[type[BaseException], ...]:
    return (
        OSError,  # includes socket.timeout and ConnectionRefusedError
        KombuError,
        amqp.exceptions.AMQPError,  # includes MessageNacked and channel/connection errors
    )


@contextmanager
def open_channel(conn: Connection) -> Iterator[Any]:
    channel = conn.channel()
    try:
        yield channel
    finally:
        channel.close()


def body_bytes(message: Message) -> bytes:
    """The raw body: py-amqp hands back str when the message names a content encoding (auto_decode)."""
    body = message.body
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    return str(body).encode(message.content_encoding or "utf-8")


def header_int(headers: Mapping[str, Any], name: str) -> int:
    value = headers.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
