"""Webhook rules (pure): the Standard Webhooks signature, secrets, the retry schedule, unsafe targets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from intake.domain.webhooks import (
    RetryPolicy,
    UnsafeTarget,
    check_addresses,
    check_url,
    new_secret,
    parse_networks,
    secret_key,
    sign,
    verify,
)


def test_the_signature_matches_the_standard_webhooks_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, f"v1,other {signature}")
    assert not verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, signature)
    assert not verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body + b" ", signature)


def test_a_new_secret_is_whsec_and_at_least_24_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) >= 24
    assert base64.b64decode(first[6:]) == secret_key(first)
    with pytest.raises(ValueError):
        secret_key("not-a-secret")


def test_backoff_doubles_up_to_its_cap_and_gives_up_after_the_window() -> None:
    policy = RetryPolicy(timedelta(seconds=5), timedelta(hours=1), timedelta(hours=24))
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert policy.delay(30) == timedelta(hours=1)
    first = datetime(2026, 3, 2, tzinfo=UTC)
    assert policy.next_attempt(first, first + timedelta(hours=23), 40) == first + timedelta(hours=24)
    assert policy.next_attempt(first, first + timedelta(hours=24), 41) is None


def test_production_targets_must_be_https() -> None:
    assert check_url("https://eoffice.example.vn/hooks?x=1", production=True) == (
        "https",
        "eoffice.example.vn",
        443,
    )
    with pytest.raises(UnsafeTarget):
        check_url("http://eoffice.example.vn/hooks", production=True)
    assert check_url("http://127.0.0.1:8099/", production=False)[2] == 8099
    for bad in ("ftp://x/", "https:///nohost", "https://user:pw@example.vn/"):
        with pytest.raises(UnsafeTarget):
            check_url(bad, production=False)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "100.64.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_inside_addresses_are_refused_in_production(address: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_addresses([address], production=True)


def test_one_inside_address_among_public_ones_is_refused() -> None:
    with pytest.raises(UnsafeTarget):
        check_addresses(["203.113.131.1", "10.0.0.5"], production=True)
    assert check_addresses(["203.113.131.1"], production=True) == ["203.113.131.1"]


def test_development_allows_loopback_only() -> None:
    assert check_addresses(["127.0.0.1"], production=False) == ["127.0.0.1"]
    with pytest.raises(UnsafeTarget):
        check_addresses(["169.254.169.254"], production=False)
    with pytest.raises(UnsafeTarget):
        check_addresses(["192.168.1.1"], production=False)


def test_an_allow_list_lets_a_private_network_through() -> None:
    allowed = parse_networks(["10.20.0.0/16", " "])
    assert check_addresses(["10.20.3.4"], production=True, allowed=allowed) == ["10.20.3.4"]
    with pytest.raises(UnsafeTarget):
        check_addresses(["10.21.0.1"], production=True, allowed=allowed)
    with pytest.raises(UnsafeTarget):
        check_addresses([], production=True)
