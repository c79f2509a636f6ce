"""Webhook rules: secrets and signatures (Standard Webhooks), the retry schedule, and which targets are safe.

Pure: no sockets here. The delivery adapter resolves a target's name, asks `check_addresses` about what it
resolved to, and connects only to an address that passed, so a name that rebinds cannot reach inside.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from intake.domain.errors import IntakeError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
FORMATS = ("json", "edxml")
# Cloud metadata endpoints that are not in a reserved range (AWS IPv6, Alibaba); 169.254.169.254 is
# link-local and refused as such.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(IntakeError):
    """A webhook target docroute will not call (scheme, or an address inside the network)."""


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the Standard Webhooks form of a signing secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key: the decoded bytes after `whsec_`."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, the webhook-signature header's value."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when one of the space-separated signatures in `header` is this body's (constant time)."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff, then a dead letter once `give_up_after` has passed since the first try."""

    first_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt (1, 2, …)."""
        factor = 2 ** min(max(attempts - 1, 0), 40)
        delay: timedelta = min(self.first_delay * factor, self.max_delay)
        return delay

    def next_attempt(self, first_attempt: datetime, now: datetime, attempts: int) -> datetime | None:
        """When to try again, or None: dead-letter (the window since the first attempt is over)."""
        if now - first_attempt >= self.give_up_after:
            return None
        return now + self.delay(attempts)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def check_url(url: str, *, production: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of a target URL; in production only https is accepted."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget("a webhook URL is http or https", field="url")
    if production and scheme != "https":
        raise UnsafeTarget("in production a webhook URL must be https", field="url")
    if not parts.hostname:
        raise UnsafeTarget("the webhook URL has no host", field="url")
    if parts.username or parts.password:
        raise UnsafeTarget("credentials in a webhook URL are not accepted", field="url")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("the webhook URL's port is not a number", field="url") from None
    return scheme, parts.hostname, port


def _inside(address: Address) -> str | None:
    """Why `address` is inside (loopback, private, …), or None for a public address."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for reason, test in (
        ("loopback", address.is_loopback),
        ("link-local (metadata)", address.is_link_local),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
    ):
        if test:
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return "shared address space"
    return None


def check_addresses(
    addresses: Sequence[str], *, production: bool, allowed: Sequence[Network] = ()
) -> list[str]:
    """The resolved addresses that may be called; refuses if any is inside the network and not allowed.

    Every address a name resolves to is checked, not just the first: a name answering a public and a
    private address must not reach the private one on a retry. Development also allows loopback, so a
    receiver on 127.0.0.1 works on a workstation.
    """
    if not addresses:
        raise UnsafeTarget("the webhook host did not resolve", field="url")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if any(address in network for network in allowed):
            continue
        reason = _inside(address)
        if reason is None or (not production and reason == "loopback"):
            continue
        raise UnsafeTarget(f"the webhook host resolves to {address}, {reason}", field="url")
    return list(addresses)
