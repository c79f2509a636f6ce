"""Process harness: servers' isolation (fresh databases, vhost, S3 server), gunicorn/worker launching,
readiness waits, RSS sampling and the progress lines on stderr."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
GUNICORN = str(BIN / "gunicorn")
PG_ADMIN_URL = os.environ.get(
    "DOCROUTE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("DOCROUTE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
START_TIMEOUT = 60.0
POLL = 0.05

_t0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout stays free for the final summary)."""
    elapsed = time.monotonic() - _t0
    print(f"[bench {time.strftime('%H:%M:%S')} +{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = POLL, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or 'a condition'}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------------------------------ servers


class Infra:
    """Fresh PostgreSQL databases, RabbitMQ vhosts, a moto S3 server and a Ceph RGW; close() removes all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self._databases: list[str] = []
        self._vhosts: list[str] = []
        self._moto: Any = None
        self.s3_endpoint: str | None = None
        self._rgw: Any = None
        self.rgw_endpoint: str | None = None
        self.rgw_start_seconds: float | None = None
        self.rgw_rss_mb: float | None = None

    def database(self, label: str) -> str:
        name = f"docroute_bench_{label}_{uuid.uuid4().hex[:8]}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
        self._databases.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        with contextlib.suppress(ValueError):
            self._databases.remove(name)

    @property
    def has_vhost(self) -> bool:
        return bool(self._vhosts)

    @property
    def vhost_name(self) -> str:
        return self._vhosts[0]

    def vhost(self) -> str:
        """The run's own vhost, made once: rows keep apart by queue names (unit codes differ per row),
        because vhost operations get slow (minutes) on a broker that is busy with other test suites."""
        if self._vhosts:
            return f"{AMQP_BASE}/{quote(self._vhosts[0], safe='')}"
        name = f"docroute-bench-{uuid.uuid4().hex[:8]}"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True, timeout=180)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._vhosts.append(name)
        return f"{AMQP_BASE}/{quote(name, safe='')}"

    def s3(self) -> str:
        """moto's S3-protocol server (started once, in its own process so it does not compete with the
        load generator for this process's GIL), as host:port for the minio client."""
        if self.s3_endpoint is None:
            port = free_port()
            log = (self.workdir / "moto.log").open("ab")
            self._moto = subprocess.Popen(
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            endpoint = f"127.0.0.1:{port}"

            def answers() -> bool:
                with contextlib.suppress(requests.RequestException):
                    return requests.get(f"http://{endpoint}/", timeout=1).status_code < 500
                return False

            wait_until(answers, timeout=30, what="the moto S3 server")
            self.s3_endpoint = endpoint
        return self.s3_endpoint

    def rgw(self) -> str | None:
        """A private Ceph RADOS Gateway (tests/servers/rgw.py: one monitor, one in-memory OSD, one gateway),
        started once with the bench's S3 keys, as host:port; None when Ceph is not installed here."""
        if self.rgw_endpoint is None:
            from tests.servers.rgw import RgwCluster, missing_binaries

            if missing_binaries():
                return None
            cluster = RgwCluster(access_key="bench", secret_key="bench-secret", parent_dir=self.workdir)
            self._rgw = cluster
            self.rgw_endpoint = cluster.start().endpoint
            self.rgw_start_seconds = cluster.startup_seconds
            self.rgw_rss_mb = cluster.memory_bytes() / 1e6
        return self.rgw_endpoint

    def release(self) -> None:
        """Drops the databases made so far (after each row, so a 1M-task database does not linger)."""
        for name in list(self._databases):
            with contextlib.suppress(Exception), self._admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._databases.clear()

    def close(self) -> None:
        for name in list(self._databases):
            with contextlib.suppress(Exception), self._admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()
        for name in self._vhosts:
            subprocess.run(
                ["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60, check=False
            )
        if self._rgw is not None:
            self._rgw.stop()
        if self._moto is not None and self._moto.poll() is None:
            self._moto.terminate()
            try:
                self._moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._moto.kill()


def base_environ(
    *,
    data_dir: Path,
    amqp_url: str,
    jwt_secret: str,
    database_urls: Mapping[str, str],
    s3_endpoint: str | None = None,
    suffix: str | None = None,
) -> dict[str, str]:
    """The environment every service process of one measurement gets (no developer DOCROUTE_* leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")}
    suffix = suffix or uuid.uuid4().hex[:8]
    env.update(
        {
            "DOCROUTE_ENV": "development",
            "DOCROUTE_DATA_DIR": str(data_dir),
            "DOCROUTE_AMQP_URL": amqp_url,
            "DOCROUTE_JWT_ALGORITHM": "HS256",
            "DOCROUTE_JWT_SECRET": jwt_secret,
            "DOCROUTE_LOG_LEVEL": "INFO",
            "DOCROUTE_STAGING_BUCKET": f"docroute-staging-{suffix}",
            "DOCROUTE_ARCHIVE_BUCKET": f"docroute-archive-{suffix}",
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
        }
    )
    if s3_endpoint:
        env.update(
            {
                "DOCROUTE_S3_ENDPOINT": s3_endpoint,
                "DOCROUTE_S3_ACCESS_KEY": "bench",
                "DOCROUTE_S3_SECRET_KEY": "bench-secret",
                "DOCROUTE_S3_SECURE": "false",
                "DOCROUTE_S3_REGION": "us-east-1",
            }
        )
    for svc, url in database_urls.items():
        env[f"DOCROUTE_{svc.upper()}_DATABASE_URL"] = url
    return env


def migrate(svc: str, url: str) -> None:
    """`<svc>.adapters.db.migrate(shared.db.make_engine(url))`, as an operator runs it before start-up."""
    from shared.db import make_engine

    module = importlib.import_module(f"{svc}.adapters.db")
    engine = make_engine(url)
    try:
        module.migrate(engine)
    finally:
        engine.dispose()


def token(secret: str, role: str, unit: str | None = None) -> str:
    from shared.auth import issue_token

    return str(
        issue_token(
            secret,
            sub=f"bench-{role}" + (f"-{unit}" if unit else ""),
            roles=[role],
            unit=unit,
            ttl_seconds=7200,
        )
    )


# ---------------------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A launched process group (gunicorn master + workers, or a worker module)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    base_url: str | None = None

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


class Launcher:
    """Starts gunicorn apps and worker modules with logs under `logs_dir`; stop_all() ends them."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self.running: list[Proc] = []

    def gunicorn(
        self,
        name: str,
        *,
        conf: Path,
        app: str,
        env: Mapping[str, str],
        extra_args: tuple[str, ...] = (),
        timeout: float = START_TIMEOUT,
    ) -> Proc:
        """gunicorn with `conf` (the service's own settings) on a free loopback port; waits for /healthz."""
        port = free_port()
        env = dict(env)
        env["DOCROUTE_PORT"] = str(port)
        env["DOCROUTE_BIND"] = f"127.0.0.1:{port}"
        metrics = self.logs_dir / f"{name}-{port}-prometheus"
        metrics.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        log = self.logs_dir / f"{name}-{port}.log"
        cmd = [GUNICORN, "-c", str(conf), *extra_args, app]
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name=name, popen=popen, log=log, base_url=f"http://127.0.0.1:{port}")
        self.running.append(proc)
        deadline = time.monotonic() + timeout
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} gunicorn exited with {popen.returncode}:\n{tail(log)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{proc.base_url}/healthz", timeout=1).status_code == 200:
                    return proc
            if time.monotonic() > deadline:
                proc.stop()
                raise RuntimeError(f"{name} did not answer /healthz within {timeout:.0f}s:\n{tail(log)}")
            time.sleep(POLL)

    def service(self, svc: str, env: Mapping[str, str]) -> Proc:
        return self.gunicorn(
            svc, conf=ROOT / "services" / svc / "gunicorn.conf.py", app=f"{svc}.api:create_app()", env=env
        )

    def worker(self, svc: str, env: Mapping[str, str], *, timeout: float = START_TIMEOUT) -> Proc:
        """`python -m <svc>.worker`; returns once it has logged that it started (its imports and set-up done).

        Returning at once would start a row's load while the worker is still importing (2–3 s on a slow
        machine), and the row would measure the worker's start, not the service."""
        log = self.logs_dir / f"{svc}-worker-{uuid.uuid4().hex[:6]}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [PYTHON, "-m", f"{svc}.worker"],
                cwd=ROOT,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name=f"{svc}-worker", popen=popen, log=log)
        self.running.append(proc)
        started = f"{svc} worker started".encode()
        deadline = time.monotonic() + timeout
        while started not in log.read_bytes():
            if popen.poll() is not None:
                raise RuntimeError(f"{svc} worker exited with {popen.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                proc.stop()
                raise RuntimeError(f"{svc} worker did not start within {timeout:.0f}s:\n{tail(log)}")
            time.sleep(POLL)
        return proc

    def stop_all(self) -> None:
        # Workers first, so they do not log connection errors while the web processes go away.
        for proc in sorted(self.running, key=lambda p: p.base_url is not None):
            proc.stop()
        self.running.clear()


# ------------------------------------------------------------------------------------------- memory


@dataclass
class RssSampler:
    """Samples the summed RSS of each watched process group every `interval` s; keeps the peaks."""

    interval: float = 0.25
    peaks: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    _watched: dict[str, Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, proc: Proc, label: str | None = None) -> None:
        self._watched[label or proc.name] = proc

    def sample_once(self) -> None:
        for label, proc in list(self._watched.items()):
            rss = proc.rss_bytes()
            if rss:
                self.peaks[label] = max(self.peaks.get(label, 0), rss)
                self.samples[label] = self.samples.get(label, 0) + 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._stop.clear()  # a sampler may watch several phases of a row in turn
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample_once()

    def peaks_mb(self) -> dict[str, float]:
        return {label: peak / (1024 * 1024) for label, peak in self.peaks.items()}


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    """A scratch directory for data dirs and process logs; kept when `keep` (or on failure, by the caller)."""
    path = Path(tempfile.mkdtemp(prefix="docroute-bench-"))
    try:
        yield path
    finally:
        if not keep:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
