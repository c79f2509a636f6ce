"""E2E launcher: a common environment and real gunicorn / worker processes for every docroute service.

Usage from any service's e2e test module::

    def test_something(e2e_env, start_service, start_worker, token, event_tap): ...

    url = start_service("intake")          # migrated, listening, /healthz answered; stopped at session end
    start_worker("intake")                 # `python -m intake.worker` as a subprocess
    headers = {"Authorization": f"Bearer {token('clerk')}"}

`start_service` and `start_worker` are session-scoped and memoised per (service, overrides), so the
three services' tests share one running stack; pass ``env={...}`` to get a separate, differently
configured process. A module or test that needs processes of its own, on its own broker vhost and
databases (or another object store), opens a stack and has it stopped when done::

    with e2e_stack(s3_server.env()) as stack:
        url = stack.service("archive")
        stack.worker("archive")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from docroute import demo_pdfs

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
GUNICORN = str(BIN / "gunicorn")
SERVICES = ("intake", "routing", "archive")
START_TIMEOUT = 40.0
POLL = 0.05


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/e2e starts real processes: mark it so `-m "not e2e"` skips it.
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (gunicorn and the workers shut down gracefully on it), SIGKILL if it overstays."""
    _stop_many([proc], timeout)


def _stop_many(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM to every process at once, then one shared grace period, then SIGKILL for what is left.

    Stopping them one after the other let a stack's teardown take up to 15 s per process on a loaded
    machine, and six of them outlasted the test's whole time budget."""
    alive = [proc for proc in procs if proc.poll() is None]
    for proc in alive:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in alive:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class E2EEnv:
    """The environment every service process of one e2e session gets."""

    base: dict[str, str]
    data_dir: Path
    amqp_url: str
    s3_endpoint: str
    database_urls: dict[str, str]
    jwt_secret: str
    staging_bucket: str
    archive_bucket: str
    logs_dir: Path
    extra: dict[str, str] = field(default_factory=dict)

    def environ(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # A developer's own DOCROUTE_* settings must not leak into the test processes.
        for key in [k for k in env if k.startswith("DOCROUTE_")]:
            del env[key]
        env.update(self.base)
        env.update(self.extra)
        env.update(overrides or {})
        return env

    def token(
        self, role: str, unit: str | None = None, *, sub: str | None = None, ttl_seconds: int = 3600
    ) -> str:
        from shared.auth import issue_token

        return issue_token(
            self.jwt_secret,
            sub=sub or f"e2e-{role}" + (f"-{unit}" if unit else ""),
            roles=[role],
            unit=unit,
            ttl_seconds=ttl_seconds,
        )

    def auth(self, role: str, unit: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, unit)}"}


@pytest.fixture(scope="session")
def e2e_env(
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: Callable[[], str],
    amqp_vhost_factory: Callable[..., str],
    s3_endpoint: str,
) -> E2EEnv:
    """Fresh PostgreSQL database per service, one isolated RabbitMQ vhost, moto S3, a JWT secret."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    logs_dir = tmp_path_factory.mktemp("e2e-logs")
    suffix = uuid.uuid4().hex[:8]
    amqp_url = amqp_vhost_factory(session=True)
    database_urls = {svc: pg_database_factory() for svc in SERVICES}
    jwt_secret = f"e2e-secret-{uuid.uuid4().hex}"
    staging_bucket = f"docroute-staging-{suffix}"
    archive_bucket = f"docroute-archive-{suffix}"
    base = {
        "DOCROUTE_ENV": "development",
        "DOCROUTE_DATA_DIR": str(data_dir),
        "DOCROUTE_AMQP_URL": amqp_url,
        "DOCROUTE_S3_ENDPOINT": s3_endpoint,
        "DOCROUTE_S3_ACCESS_KEY": "testing",
        "DOCROUTE_S3_SECRET_KEY": "testing-secret",
        "DOCROUTE_S3_SECURE": "false",
        "DOCROUTE_S3_REGION": "us-east-1",
        "DOCROUTE_STAGING_BUCKET": staging_bucket,
        "DOCROUTE_ARCHIVE_BUCKET": archive_bucket,
        "DOCROUTE_JWT_ALGORITHM": "HS256",
        "DOCROUTE_JWT_SECRET": jwt_secret,
        "DOCROUTE_LOG_LEVEL": "INFO",
        "DOCROUTE_PUBLISH_CONFIRM_TIMEOUT": "5",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        # moto refuses nothing, but botocore-style clients look for these when the minio client does not.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
    }
    for svc, url in database_urls.items():
        base[f"DOCROUTE_{svc.upper()}_DATABASE_URL"] = url
    return E2EEnv(
        base=base,
        data_dir=data_dir,
        amqp_url=amqp_url,
        s3_endpoint=s3_endpoint,
        database_urls=database_urls,
        jwt_secret=jwt_secret,
        staging_bucket=staging_bucket,
        archive_bucket=archive_bucket,
        logs_dir=logs_dir,
    )


@pytest.fixture(scope="session")
def token(e2e_env: E2EEnv) -> Callable[..., str]:
    """`token(role, unit=None)` -> a signed HS256 JWT the e2e services accept."""
    return e2e_env.token


def migrate(svc: str, env: Mapping[str, str], log: Path) -> None:
    """Runs `<svc>.adapters.db.migrate(make_engine(url))` in a child process, as an operator would."""
    url = env[f"DOCROUTE_{svc.upper()}_DATABASE_URL"]
    code = (
        "import sys\n"
        "from shared.db import make_engine\n"
        f"from {svc}.adapters.db import migrate\n"
        "engine = make_engine(sys.argv[1])\n"
        "try:\n    migrate(engine)\nfinally:\n    engine.dispose()\n"
    )
    with log.open("ab") as out:
        result = subprocess.run(
            [PYTHON, "-c", code, url],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migrating {svc} failed (exit {result.returncode}):\n{_tail(log)}")


@dataclass
class RunningProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    base_url: str | None = None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def launch_service(
    svc: str, env: Mapping[str, str], logs_dir: Path, *, workers: int = 2, timeout: float = START_TIMEOUT
) -> RunningProcess:
    """Migrates, starts gunicorn with services/<svc>/gunicorn.conf.py on a free port, waits for /healthz."""
    port = _free_port()
    env = dict(env)
    env["DOCROUTE_PORT"] = str(port)
    env["DOCROUTE_BIND"] = f"127.0.0.1:{port}"
    metrics_dir = logs_dir / f"{svc}-{port}-prometheus"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    log = logs_dir / f"{svc}-{port}.log"
    migrate(svc, env, log)
    cmd = [GUNICORN]
    conf = ROOT / "services" / svc / "gunicorn.conf.py"
    if conf.exists():
        cmd += ["-c", str(conf)]
    # Command-line options override the config file: keep the port and a small worker count for 2 cores.
    cmd += ["--bind", env["DOCROUTE_BIND"], "--workers", str(workers), f"{svc}.api:create_app()"]
    out = log.open("ab")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    base_url = f"http://127.0.0.1:{port}"
    running = RunningProcess(name=svc, proc=proc, log=log, base_url=base_url)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{svc} gunicorn exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return running
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"{svc} did not answer /healthz within {timeout:.0f}s:\n{_tail(log)}")
        time.sleep(POLL)


def launch_worker(svc: str, env: Mapping[str, str], logs_dir: Path, *, settle: float = 1.0) -> RunningProcess:
    """Starts `python -m <svc>.worker`; fails fast if it dies during start-up."""
    log = logs_dir / f"{svc}-worker-{uuid.uuid4().hex[:6]}.log"
    out = log.open("ab")
    proc = subprocess.Popen(
        [PYTHON, "-m", f"{svc}.worker"],
        cwd=ROOT,
        env=dict(env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{svc} worker exited with {proc.returncode}:\n{_tail(log)}")
        time.sleep(POLL)
    return RunningProcess(name=f"{svc}-worker", proc=proc, log=log)


def _key(kind: str, svc: str, env: Mapping[str, str] | None) -> tuple[str, str, str]:
    return kind, svc, json.dumps(dict(env or {}), sort_keys=True)


# Every process this session started; checked after each e2e test so a crashed worker is reported with
# its log instead of surfacing later as a timeout somewhere else.
_STARTED: list[RunningProcess] = []


@pytest.fixture(autouse=True)
def _started_processes_stay_alive() -> Iterator[None]:
    yield
    dead = [r for r in _STARTED if r.proc.poll() is not None]
    if dead:
        for running in dead:
            _STARTED.remove(running)
        report = "\n\n".join(f"{r.name} exited with {r.proc.returncode}:\n{_tail(r.log)}" for r in dead)
        pytest.fail(f"e2e process(es) died during the test:\n{report}", pytrace=False)


def _stop_all(processes: list[RunningProcess]) -> None:
    # Workers are signalled first so they do not log connection errors while the web processes go away.
    ordered = sorted(processes, key=lambda r: r.base_url is not None)
    for running in ordered:
        if running in _STARTED:
            _STARTED.remove(running)
    _stop_many([running.proc for running in ordered])


@dataclass
class Stack:
    """docroute processes started with one set of settings over the session's environment, memoised per
    (service, extra settings); `close()` stops them."""

    e2e: E2EEnv
    overrides: dict[str, str] = field(default_factory=dict)
    _running: dict[tuple[str, str, str], RunningProcess] = field(default_factory=dict)

    @property
    def amqp_url(self) -> str:
        return self.overrides.get("DOCROUTE_AMQP_URL", self.e2e.amqp_url)

    def environ(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        return self.e2e.environ({**self.overrides, **(env or {})})

    def service(self, svc: str, env: Mapping[str, str] | None = None) -> str:
        """The base URL of a running gunicorn of `svc` (migrated, /healthz answered)."""
        running = self._start("service", svc, env, launch_service)
        assert running.base_url is not None
        return running.base_url

    def worker(self, svc: str, env: Mapping[str, str] | None = None) -> RunningProcess:
        """The running `python -m <svc>.worker` (started again if it died)."""
        return self._start("worker", svc, env, launch_worker)

    def kill_worker(self, svc: str, env: Mapping[str, str] | None = None) -> None:
        """SIGKILLs the running worker of `svc`: a crash the test causes, not one to report; `worker()`
        starts another."""
        running = self._running.pop(_key("worker", svc, env))
        assert running.proc.poll() is None, f"the {svc} worker died on its own:\n{_tail(running.log)}"
        _STARTED.remove(running)
        running.proc.send_signal(signal.SIGKILL)
        running.proc.wait(timeout=10)

    def start(self, *services: str, workers: tuple[str, ...] | None = None) -> Stack:
        """Starts the APIs of `services`, then the workers of `workers` (by default the same services)."""
        for svc in services:
            self.service(svc)
        for svc in services if workers is None else workers:
            self.worker(svc)
        return self

    def url(self, svc: str) -> str:
        """The base URL of the API of `svc` started with the stack's own settings."""
        return self.service(svc)

    def database_url(self, svc: str) -> str:
        return self.environ()[f"DOCROUTE_{svc.upper()}_DATABASE_URL"]

    def _start(
        self,
        kind: str,
        svc: str,
        env: Mapping[str, str] | None,
        launch: Callable[[str, Mapping[str, str], Path], RunningProcess],
    ) -> RunningProcess:
        key = _key(kind, svc, env)
        running = self._running.get(key)
        # One that died on its own stays in _STARTED, so the test is still told it died.
        if running is None or running.proc.poll() is not None:
            running = launch(svc, self.environ(env), self.e2e.logs_dir)
            self._running[key] = running
            _STARTED.append(running)
        return running

    def close(self) -> None:
        _stop_all(list(self._running.values()))
        self._running.clear()


@pytest.fixture(scope="session")
def _processes() -> Iterator[list[RunningProcess]]:
    yield _STARTED
    _stop_all(list(_STARTED))


@pytest.fixture(scope="session")
def _session_stack(e2e_env: E2EEnv, _processes: list[RunningProcess]) -> Stack:
    """The processes on the session's own environment, kept until the session ends."""
    return Stack(e2e_env)


@pytest.fixture(scope="session")
def start_service(_session_stack: Stack) -> Callable[..., str]:
    """`start_service(svc, env=None)` -> base URL of a running gunicorn (memoised for the session)."""
    return _session_stack.service


@pytest.fixture(scope="session")
def start_worker(_session_stack: Stack) -> Callable[..., RunningProcess]:
    """`start_worker(svc, env=None)` -> the running `python -m <svc>.worker` process (memoised)."""
    return _session_stack.worker


@pytest.fixture(scope="session")
def e2e_stack(
    e2e_env: E2EEnv,
    pg_database_factory: Callable[[], str],
    amqp_vhost_factory: Callable[..., str],
    _processes: list[RunningProcess],
) -> Callable[..., contextlib.AbstractContextManager[Stack]]:
    """`with e2e_stack(env, databases=("intake", "routing")) as stack:` -> a Stack on a broker vhost and
    fresh databases of its own (for the services named; all three by default), so no other module's
    workers take its events and no other test's rows meet its own; `env` adds or overrides settings.
    Its processes are stopped on leaving the block."""

    @contextlib.contextmanager
    def open_stack(
        env: Mapping[str, str] | None = None, *, databases: tuple[str, ...] = SERVICES
    ) -> Iterator[Stack]:
        overrides = {"DOCROUTE_AMQP_URL": amqp_vhost_factory(session=True)}
        overrides |= {f"DOCROUTE_{svc.upper()}_DATABASE_URL": pg_database_factory() for svc in databases}
        stack = Stack(e2e_env, overrides | dict(env or {}))
        try:
            yield stack
        finally:
            stack.close()

    return open_stack


class EventTap:
    """A private, auto-deleted queue bound to an events exchange, to see what a service published."""

    def __init__(self, amqp_url: str, exchange: str, routing_key: str = "#") -> None:
        from kombu import Connection, Exchange, Queue
        from shared.messaging import declare_events_exchange

        self._conn = Connection(amqp_url, connect_timeout=5)
        # Declared the way the services declare it (with its alternate exchange), then only referenced.
        declare_events_exchange(self._conn, exchange.split(".")[0])
        self._exchange = Exchange(exchange, type="topic", durable=True, no_declare=True)
        self._queue = Queue(
            f"e2e-tap-{uuid.uuid4().hex[:10]}",
            exchange=self._exchange,
            routing_key=routing_key,
            durable=False,
            auto_delete=False,
            exclusive=True,
        )
        self._channel = self._conn.channel()
        self._bound = self._queue(self._channel)
        self._bound.declare()

    def collect(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Envelopes (decoded JSON) matching `predicate`, waiting until `count` arrived or timing out."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            message = self._bound.get(no_ack=True)
            if message is None:
                time.sleep(POLL)
                continue
            envelope = json.loads(
                message.body.decode("utf-8") if isinstance(message.body, bytes) else message.body
            )
            envelope["_routing_key"] = message.delivery_info.get("routing_key")
            if predicate(envelope):
                found.append(envelope)
        return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._bound.delete()
        with contextlib.suppress(Exception):
            self._conn.release()


@pytest.fixture
def event_tap(e2e_env: E2EEnv) -> Iterator[Callable[..., EventTap]]:
    """`event_tap("intake.events", "intake.directive_registered.v1")` -> EventTap; bind it BEFORE acting."""
    taps: list[EventTap] = []

    def make(exchange: str, routing_key: str = "#") -> EventTap:
        tap = EventTap(e2e_env.amqp_url, exchange, routing_key)
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        tap.close()


def minimal_pdf(text: str = "docroute e2e") -> bytes:
    return demo_pdfs.minimal_pdf(text, version="1.4")


@pytest.fixture(scope="session")
def make_pdf() -> Callable[[str], bytes]:
    return minimal_pdf
