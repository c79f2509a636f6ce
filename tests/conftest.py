"""Fixtures for the real servers the integration tests use: PostgreSQL, RabbitMQ, moto's S3 server and a
private Ceph RADOS Gateway."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from minio import Minio
    from shared.objectstore import KeyLock, S3Store

    from tests.servers.rgw import RgwServer

PG_ADMIN_URL = os.environ.get("DOCROUTE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("DOCROUTE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh_memory_broker() -> Iterator[None]:
    """kombu's memory:// broker is process-global: give every test an empty one, as a new process would."""
    from kombu.transport import memory

    yield
    memory.Channel.queues.clear()
    memory.Channel.events.clear()
    memory.Transport.global_state.clear()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[[], str]]:
    """Creates empty PostgreSQL databases on demand; drops them all at the end of the session."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"docroute_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
        created.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_database_factory: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return pg_database_factory()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


def _rabbitmqctl(*args: str, timeout: float = 120) -> None:
    """Runs one rabbitmqctl command; on a timeout the whole process group goes, leaving no CLI node behind.

    (A stuck CLI node keeps one of the few Erlang distribution ports rabbitmqctl may use; enough of them and
    every later call fails.)
    """
    proc = subprocess.Popen(
        ["rabbitmqctl", "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {output.decode(errors='replace')}")


_CREATED_VHOSTS: list[str] = []


_SESSION_VHOSTS: list[str] = []


@pytest.fixture(scope="session")
def amqp_vhost_factory() -> Iterator[Callable[..., str]]:
    """Creates isolated RabbitMQ virtual hosts on demand (guest has full rights).

    `factory()` gives a vhost that lives until the end of the current test module (see
    `_release_module_vhosts`); `factory(session=True)`, one for session-scoped fixtures. Every live vhost
    holds message-store files open in the broker, and a broker out of file handles stops creating vhosts.
    """

    def make(*, session: bool = False) -> str:
        vhost = f"docroute-test-{uuid.uuid4().hex[:10]}"
        _rabbitmqctl("add_vhost", vhost)
        (_SESSION_VHOSTS if session else _CREATED_VHOSTS).append(vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return f"{AMQP_BASE}/{quote(vhost, safe='')}"

    yield make
    _delete_vhosts(_CREATED_VHOSTS + _SESSION_VHOSTS)


def _delete_vhosts(vhosts: list[str]) -> None:
    # One at a time: deleting vhosts in parallel with other vhost operations has wedged RabbitMQ 3.10's
    # vhost supervisor here (every later add_vhost hung).
    for vhost in vhosts:
        # A vhost that cannot be deleted now is left for the next cleanup; no test result depends on it.
        with contextlib.suppress(subprocess.TimeoutExpired, RuntimeError):
            _rabbitmqctl("delete_vhost", vhost, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def _release_module_vhosts() -> Iterator[None]:
    mark = len(_CREATED_VHOSTS)
    yield
    made = _CREATED_VHOSTS[mark:]
    del _CREATED_VHOSTS[mark:]
    _delete_vhosts(made)


@pytest.fixture(scope="session")
def amqp_url(amqp_vhost_factory: Callable[..., str]) -> str:
    """One RabbitMQ virtual host shared by the session; tests that need isolation ask the factory."""
    return amqp_vhost_factory(session=True)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-protocol server on a free loopback port, as host:port for the minio client."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped is gone for every purpose that matters here.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


@pytest.fixture(scope="session")
def rgw() -> Iterator[RgwServer]:
    """A private single-host Ceph cluster with its RADOS Gateway (S3) on a free loopback port, started once
    per session (about a second) and removed at the end: its daemons killed, its folder deleted."""
    from tests.servers.rgw import RgwCluster, missing_binaries

    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"Ceph RGW is not installed (missing {', '.join(missing)}): "
            "apt-get install ceph-mon ceph-osd radosgw, as .ci/run does"
        )
    cluster = RgwCluster()
    server = cluster.start()
    yield server
    pids, root = cluster.pids, cluster.root
    cluster.stop()
    left = [pid for pid in pids if _alive(pid)]
    assert not left, f"Ceph daemons still running after teardown: {left}"
    assert root is not None and not root.exists(), f"{root} was not removed"


@dataclass(frozen=True)
class S3Server:
    """One S3-protocol server the integration tests can run against, and how to reach it."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str

    def env(self) -> dict[str, str]:
        """The settings that point a docroute service at this server."""
        return {
            "DOCROUTE_S3_ENDPOINT": self.endpoint,
            "DOCROUTE_S3_ACCESS_KEY": self.access_key,
            "DOCROUTE_S3_SECRET_KEY": self.secret_key,
            "DOCROUTE_S3_SECURE": "false",
            "DOCROUTE_S3_REGION": self.region,
        }

    def store(self, key_lock: KeyLock | None = None) -> S3Store:
        """docroute's adapter on this server (give it a key lock where a lock bucket needs one: RGW)."""
        from shared.objectstore import S3Store

        return S3Store(
            self.endpoint,
            self.access_key,
            self.secret_key,
            secure=False,
            region=self.region,
            key_lock=key_lock,
        )

    def raw(self) -> Minio:
        """A bare minio client with the same keys: what an intruder holding them could do."""
        from minio import Minio

        return Minio(self.endpoint, self.access_key, self.secret_key, secure=False, region=self.region)

    def versions(self, bucket: str, key: str) -> list[str | None]:
        """Every version the server keeps of `key`, newest first, as it lists them (delete markers too)."""
        return [
            v.version_id
            for v in self.raw().list_objects(bucket, prefix=key, include_version=True)
            if v.object_name == key
        ]


@pytest.fixture(params=["moto", "rgw"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn: moto (the test double) and Ceph RGW (a real store, skipped without Ceph)."""
    if request.param == "moto":
        endpoint = request.getfixturevalue("s3_endpoint")
        return S3Server("moto", endpoint, "testing", "testing", "us-east-1")
    server = request.getfixturevalue("rgw")
    return S3Server("rgw", server.endpoint, server.access_key, server.secret_key, server.region)
