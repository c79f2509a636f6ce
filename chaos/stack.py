"""docroute in real-server mode for a fault run: `docroute up` against the private servers (the broker and
the object store reached through TCP proxies the run controls), its processes by kind, and the seed data."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil
import requests

from chaos.servers import ROOT, MotoS3, PgCluster, RabbitNode, ServerError, free_port, tail, wait_for

DOCROUTE = ROOT / ".venv" / "bin" / "docroute"
SERVICES = ("intake", "routing", "archive")
SAMPLES = ROOT / "samples"


class Proxy(Protocol):
    """A TCP proxy in front of one server, which the run can make refuse or cut its connections."""

    @property
    def port(self) -> int:
        """The loopback port clients connect to."""
        ...

    def refuse(self) -> None:
        """Drops every open connection and refuses new ones (the server looks unreachable)."""
        ...

    def restore(self) -> None:
        """Accepts and forwards connections again."""
        ...

    def cut(self) -> None:
        """Drops every open connection once; new connections are accepted."""
        ...

    def close(self) -> None: ...


def open_proxy(upstream_port: int) -> Proxy:
    """A started proxy from a free loopback port to 127.0.0.1:`upstream_port`."""
    from chaos.proxy import TcpProxy

    proxy: Proxy = TcpProxy(("127.0.0.1", upstream_port))
    return proxy


@dataclass
class Servers:
    """The private servers of one run and the proxies the services reach the broker and the store through."""

    workdir: Path
    rabbit: RabbitNode
    postgres: PgCluster
    s3: MotoS3
    broker_proxy: Proxy | None = None
    s3_proxy: Proxy | None = None

    @classmethod
    def start(cls, workdir: Path) -> Servers:
        servers = cls(
            workdir=workdir,
            rabbit=RabbitNode(workdir / "rabbitmq"),
            postgres=PgCluster(workdir / "postgres"),
            s3=MotoS3(workdir / "s3"),
        )
        try:
            servers.postgres.start()
            servers.s3.start()
            servers.rabbit.start()
            servers.broker_proxy = open_proxy(servers.rabbit.amqp_port)
            servers.s3_proxy = open_proxy(servers.s3.port)
        except BaseException:
            servers.close()
            raise
        return servers

    @property
    def services_amqp_url(self) -> str:
        """The AMQP URL the services get: through the broker proxy."""
        if self.broker_proxy is None:
            return self.rabbit.amqp_url
        return f"amqp://guest:guest@127.0.0.1:{self.broker_proxy.port}/"

    @property
    def services_s3_endpoint(self) -> str:
        if self.s3_proxy is None:
            return self.s3.endpoint
        return f"127.0.0.1:{self.s3_proxy.port}"

    def close(self) -> None:
        for proxy in (self.broker_proxy, self.s3_proxy):
            if proxy is not None:
                with contextlib.suppress(Exception):
                    proxy.close()
        for server in (self.rabbit, self.postgres, self.s3):
            with contextlib.suppress(Exception):
                server.close()


@dataclass
class Stack:
    """One `docroute up` (gunicorn + worker per service) against `servers`; logs under `workdir`."""

    servers: Servers
    workdir: Path
    jwt_secret: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex}{uuid.uuid4().hex}")
    trust_store: Path | None = None
    web_workers: int = 2
    extra_env: Mapping[str, str] = field(default_factory=dict)
    base_port: int = 0
    database_urls: dict[str, str] = field(default_factory=dict)
    staging_bucket: str = "chaos-staging"
    archive_bucket: str = "chaos-archive"
    _proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # Intake's staging sweep removes uploads no directive refers to once this old (its minimum).
    orphan_seconds: int = 300

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.base_port:
            self.base_port = three_free_ports()

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.base_port + SERVICES.index(service)}"

    @property
    def log(self) -> Path:
        return self.workdir / "up.log"

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")}
        env.update(
            {
                "DOCROUTE_ENV": "development",
                "DOCROUTE_DATA_DIR": str(self.workdir / "data"),
                "DOCROUTE_AMQP_URL": self.servers.services_amqp_url,
                **self.servers.s3.environ(self.servers.services_s3_endpoint),
                "DOCROUTE_STAGING_BUCKET": self.staging_bucket,
                "DOCROUTE_ARCHIVE_BUCKET": self.archive_bucket,
                "DOCROUTE_JWT_ALGORITHM": "HS256",
                "DOCROUTE_JWT_SECRET": self.jwt_secret,
                "DOCROUTE_LOG_LEVEL": "INFO",
                "DOCROUTE_WEB_WORKERS": str(self.web_workers),
                "DOCROUTE_STAGING_ORPHAN_SECONDS": str(self.orphan_seconds),
                "PYTHONUNBUFFERED": "1",
                "PYTHONIOENCODING": "utf-8",
            }
        )
        if self.trust_store is not None:
            env["DOCROUTE_TRUST_STORE"] = str(self.trust_store)
        for service, url in self.database_urls.items():
            env[f"DOCROUTE_{service.upper()}_DATABASE_URL"] = url
        env.update(self.extra_env)
        return env

    def create_databases(self) -> None:
        for service in SERVICES:
            if service not in self.database_urls:
                self.database_urls[service] = self.servers.postgres.create_database(service)

    def up(self, timeout: float = 180.0) -> None:
        """`docroute up` (migrations first), then waits until every API answers /readyz with 200."""
        self.create_databases()
        (self.workdir / "data").mkdir(exist_ok=True)
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - our own CLI
                [str(DOCROUTE), "up", "--base-port", str(self.base_port)],
                cwd=ROOT,
                env=self.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        self.wait_ready(timeout=timeout)
        # The workers declare the topology and subscribe after their imports: wait until each says so.
        wait_for(
            lambda: len(self.worker_pids()) == len(SERVICES) and self._workers_started(),
            timeout=timeout,
            what="the three workers to start",
            interval=0.3,
        )

    def workers_ready(self) -> bool:
        """Every worker running and done starting: as many "<svc> worker started" lines as starts of it
        (`docroute up` logs each start and restart of a child)."""
        if len(self.worker_pids()) != len(SERVICES):
            return False
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return all(
            text.count(f"{service} worker started") >= max(text.count(f"started {service}-worker ("), 1)
            for service in SERVICES
        )

    def _workers_started(self) -> bool:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return all(f"{service} worker started" in text for service in SERVICES)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ready(self) -> bool:
        for service in SERVICES:
            try:
                if requests.get(f"{self.url(service)}/readyz", timeout=5).status_code != 200:
                    return False
            except requests.RequestException:
                return False
        return True

    def wait_ready(self, timeout: float) -> None:
        def check() -> bool:
            if not self.alive():
                raise ServerError(f"docroute up exited:\n{tail(self.log, 60)}")
            return self.ready()

        wait_for(check, timeout=timeout, what="the three APIs to be ready", interval=0.5)

    def down(self, timeout: float = 60.0) -> None:
        """SIGTERM to `docroute up` (it stops its children), SIGKILL to the whole group if it overstays."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    # ------------------------------------------------------------------------------ processes by kind

    def _children(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        assert self._proc is not None
        try:
            return list(psutil.Process(self._proc.pid).children(recursive=True))
        except psutil.Error:
            return []

    def worker_pids(self) -> dict[str, int]:
        """{service: pid} of the `python -m <service>.worker` processes running now."""
        found: dict[str, int] = {}
        for proc in self._children():
            with contextlib.suppress(psutil.Error):
                cmdline = proc.cmdline()
                for service in SERVICES:
                    if f"{service}.worker" in cmdline:
                        found[service] = proc.pid
        return found

    def web_worker_pids(self, service: str) -> list[int]:
        """Pids of the gunicorn worker processes (not the master) serving `service` now."""
        app = f"{service}.api:create_app()"
        pids: list[int] = []
        for proc in self._children():
            with contextlib.suppress(psutil.Error):
                if app in proc.cmdline() and proc.parent() is not None and app in proc.parent().cmdline():
                    pids.append(proc.pid)
        return pids

    def signal_worker(self, service: str, sig: int) -> int:
        pid = self.worker_pids()[service]
        os.kill(pid, sig)
        return pid

    # ---------------------------------------------------------------------------------------- tokens

    def token(self, role: str, unit: str | None = None) -> str:
        from shared.auth import issue_token

        return str(
            issue_token(self.jwt_secret, sub=f"chaos-{role}", roles=[role], unit=unit, ttl_seconds=4 * 3600)
        )

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}

    def load_seed(self) -> list[str]:
        """Imports samples/units.yaml and puts samples/rules.yaml through routing's API; the unit codes."""
        routing = self.url("routing")
        headers = {**self.auth("clerk"), "Content-Type": "application/yaml"}
        answer = requests.post(
            f"{routing}/v1/units:import",
            data=(SAMPLES / "units.yaml").read_bytes(),
            headers=headers,
            timeout=60,
        )
        answer.raise_for_status()
        answer = requests.put(
            f"{routing}/v1/rules", data=(SAMPLES / "rules.yaml").read_bytes(), headers=headers, timeout=60
        )
        answer.raise_for_status()
        units = requests.get(f"{routing}/v1/units?per_page=100", headers=self.auth("clerk"), timeout=30)
        units.raise_for_status()
        return [str(unit["code"]) for unit in units.json()["items"]]


def three_free_ports() -> int:
    """The first of three consecutive free loopback ports (`docroute up` takes base, base + 1, base + 2)."""
    for _ in range(200):
        base = free_port(20000, 60000)
        with contextlib.suppress(ServerError):
            if all(free_port(port, port + 1) == port for port in (base + 1, base + 2)):
                return base
    raise ServerError("no three consecutive free ports")


def sleep_until(deadline: float) -> None:
    time.sleep(max(deadline - time.monotonic(), 0.0))
