"""Fixtures for the shared-package tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database: SQLite file always, PostgreSQL (marked integration) too."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
