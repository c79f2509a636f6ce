"""Webhook HTTP client: resolves the target, checks every address, connects to a checked one, posts once.

The connection goes to the IP address that was checked (TLS still verifies the certificate for the
host name), so a DNS answer that changes between the check and the connect cannot lead inside. Responses
are read up to a bound and every step has a timeout.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from intake.domain.webhooks import Network, UnsafeTarget, check_addresses, check_url

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class DeliveryFailed(Exception):
    """The attempt did not reach a 2xx; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TargetPolicy:
    production: bool
    allowed: Sequence[Network] = ()
    timeout: float = 10.0
    max_response_bytes: int = 64 * 1024


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: TargetPolicy,
    resolver: Resolver = resolve,
) -> int:
    """POSTs `body`; answers the 2xx status, raises DeliveryFailed (or UnsafeTarget) otherwise."""
    scheme, host, port = check_url(url, production=policy.production)
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise DeliveryFailed(f"cannot resolve {host}: {exc}") from None
    safe = check_addresses(addresses, production=policy.production, allowed=policy.allowed)
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, safe[0], policy.timeout)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        # Bounded: a receiver cannot make the worker read (or hold) an unbounded answer.
        answer = response.read(policy.max_response_bytes)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        connection.close()
    if 200 <= status < 300:
        return status
    snippet = answer[:200].decode("utf-8", "replace")
    raise DeliveryFailed(f"HTTP {status}: {snippet}", status=status)


__all__ = ["DeliveryFailed", "TargetPolicy", "UnsafeTarget", "post", "resolve"]
