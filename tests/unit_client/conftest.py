"""Fixtures of the unit-client tests: a unit queue on a real broker, local HTTP servers, client processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import ClientProcess, RecordingServer, declare_unit_queue, unique_unit


@pytest.fixture
def unit_queue(amqp_url: str) -> tuple[str, str]:
    """A fresh unit (code) with its task queue declared the way routing does it, in the session vhost."""
    code = unique_unit()
    declare_unit_queue(amqp_url, code)
    return amqp_url, code


@pytest.fixture
def http_server() -> Iterator[Callable[..., RecordingServer]]:
    servers: list[RecordingServer] = []

    def make(respond: Callable[[str, int], int] | None = None) -> RecordingServer:
        server = RecordingServer(respond)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def run_client(tmp_path: Path) -> Iterator[Callable[..., ClientProcess]]:
    """Starts the real `docroute-unit` command; every process still running at teardown is killed."""
    procs: list[ClientProcess] = []

    def start(*args: str) -> ClientProcess:
        proc = ClientProcess(list(args), tmp_path / f"client-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()
