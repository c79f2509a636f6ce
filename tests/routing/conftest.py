"""Fixtures shared by routing's api and integration tests: an app on SQLite and memory:// by default."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from routing_testkit import RoutingApp, build_routing_app


@pytest.fixture
def make_routing_app(tmp_path: Path) -> Iterator[Callable[..., RoutingApp]]:
    made: list[RoutingApp] = []

    def make(db_url: str | None = None, amqp_url: str = "memory://") -> RoutingApp:
        made.append(build_routing_app(tmp_path, db_url, amqp_url))
        return made[-1]

    yield make
    for app in made:
        app.deps.engine.dispose()


@pytest.fixture
def rapp(make_routing_app: Callable[..., RoutingApp]) -> RoutingApp:
    return make_routing_app()
