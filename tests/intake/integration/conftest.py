"""Fixtures for intake integration tests: the app on PostgreSQL + moto S3, and taps on intake.events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from intake_broker import QueueTap, s3_environ
from intake_testing import IntakeApp, build_intake_app, intake_environ


@pytest.fixture
def tap_factory() -> Iterator[Callable[[str], QueueTap]]:
    taps: list[QueueTap] = []

    def make(amqp_url: str) -> QueueTap:
        tap = QueueTap(amqp_url)
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        tap.close()


@pytest.fixture
def pg_intake(tmp_path: Path, pg_url: str, s3_endpoint: str) -> Iterator[IntakeApp]:
    """The intake app on a fresh PostgreSQL database and moto's S3 server."""
    built = build_intake_app(
        intake_environ(tmp_path, DOCROUTE_INTAKE_DATABASE_URL=pg_url, **s3_environ(s3_endpoint))
    )
    yield built
    built.deps.engine.dispose()
