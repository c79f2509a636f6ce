"""Fixtures of the fault tests: private servers (a RabbitMQ node, a PostgreSQL cluster, moto's S3 server)
that tests may stop, kill and restart, one fault run shared by a module's quick faults, and fault runs of
their own in background threads for the 60 s outages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.background import BackgroundRun
from chaos.faults import FAULTS, Fault
from chaos.run import Config, Run
from chaos.servers import MotoS3, PgCluster, RabbitNode


@pytest.fixture
def rabbit_node_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], RabbitNode]]:
    """`factory()` -> a started RabbitMQ node of our own (own name, ports, data); all closed at the end."""
    nodes: list[RabbitNode] = []

    def make() -> RabbitNode:
        node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
        nodes.append(node)
        node.start()
        return node

    yield make
    for node in nodes:
        node.close()


@pytest.fixture
def rabbit_node(rabbit_node_factory: Callable[[], RabbitNode]) -> RabbitNode:
    return rabbit_node_factory()


@pytest.fixture
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """A started PostgreSQL cluster of our own on a free port (trust auth); removed at the end."""
    cluster = PgCluster(tmp_path_factory.mktemp("pg"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 server as a child process on a free port."""
    server = MotoS3(tmp_path_factory.mktemp("s3"))
    try:
        server.start()
        yield server
    finally:
        server.close()


def fault_config(workdir: Path) -> Config:
    """The fault tests' runs: 10 directives per fault at 3/s, 60 s outages with a backlog of 20, as issue 15
    asks."""
    return Config(
        faults=list(FAULTS),
        directives_per_fault=10,
        rate=3.0,
        outage=60.0,
        backlog=20,
        workdir=workdir,
        keep=True,  # pytest's temp folders keep the logs of the last runs for a failure's post-mortem
    )


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One fault run (servers, `docroute up`, the seed) shared by the module's quick faults: each test runs
    its faults on it and judges its own rows. Stopped with the module, not left idling through the session."""
    with Run(fault_config(tmp_path_factory.mktemp("chaos"))) as run:
        yield run


@pytest.fixture(scope="module")
def background_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str, list[Fault]], BackgroundRun]]:
    """`start(name, faults)` -> a fault run on private servers of its own, set up and run in a thread from
    now on (chaos.background); every one started is waited for and torn down with the module."""
    runs: list[BackgroundRun] = []

    def start(name: str, faults: list[Fault]) -> BackgroundRun:
        run = BackgroundRun(name, fault_config(tmp_path_factory.mktemp(name)), faults)
        runs.append(run)
        return run

    yield start
    # Stopped side by side (each stack and its servers take a while to stop); bounded by close()'s own waits.
    closers = [run.close_in_background() for run in runs]
    for closer in closers:
        closer.join()
