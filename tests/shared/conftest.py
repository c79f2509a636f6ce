"""Fixtures for the shared-package tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from shared.messaging import Publisher


# --- messaging and persistence plumbing (envelope, outbox, inbox, messaging) ---
@pytest.fixture
def vhost_url(amqp_vhost_factory: Callable[[], str]) -> str:
    """An AMQP URL of a fresh, empty RabbitMQ virtual host (no topology shared with other tests)."""
    return amqp_vhost_factory()


@pytest.fixture(scope="module")
def rabbit_url(amqp_vhost_factory: Callable[[], str]) -> str:
    """One RabbitMQ virtual host per test module (creating one costs about a second); tests in the module
    keep apart by queue name."""
    return amqp_vhost_factory()


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def broker_url(request: pytest.FixtureRequest) -> str:
    """A broker: memory:// always, the real RabbitMQ (marked integration) too."""
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("rabbit_url"))


@pytest.fixture
def publisher(broker_url: str) -> Iterator[Publisher]:
    with Publisher(broker_url, confirm_timeout=2.0, retries=1) as pub:
        yield pub


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database: SQLite file always, PostgreSQL (marked integration) too."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
