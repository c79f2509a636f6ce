"""E2E: `docroute up` (what `make up` runs) migrates, runs gunicorn + worker per service and keeps them up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

# Each test starts a whole stack (and its broker vhost and databases) and waits on several restarts: on a
# busy two-core host that takes minutes, past the suite's default per-test limit.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DOCROUTE = ROOT / ".venv" / "bin" / "docroute"
SAMPLES = ROOT / "samples"
SERVICES = ("intake", "routing", "archive")


def _three_free_ports(start: int) -> int:
    for base in range(start, start + 1000, 3):
        try:
            for port in range(base, base + 3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@dataclass
class Up:
    """One `docroute up` process with its output in a file."""

    proc: subprocess.Popen[bytes]
    log: Path
    base: int

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.base + SERVICES.index(service)}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.output().splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return lines

    def worker_pid(self, service: str) -> int | None:
        return self._child_pid(["-m", f"{service}.worker"])

    def api_pid(self, service: str) -> int | None:
        return self._child_pid([f"{service}.api:create_app()"])

    def _child_pid(self, tail: list[str]) -> int | None:
        for child in psutil.Process(self.proc.pid).children():
            try:
                if child.cmdline()[-len(tail) :] == tail and child.status() != "zombie":
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    def wait_ready(self) -> None:
        for service in SERVICES:

            def ready(service: str = service) -> bool:
                assert self.proc.poll() is None, self.output()[-3000:]
                try:
                    return requests.get(f"{self.url(service)}/readyz", timeout=10).status_code == 200
                except requests.RequestException:
                    return False

            wait_for(ready, f"{service} /readyz")


def _start(env: dict[str, str], tmp_path: Path, *args: str, own_group: bool = False) -> Up:
    base = _three_free_ports(18400)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DOCROUTE), "up", "--base-port", str(base), *args],
            env=env,
            stdout=out,
            stderr=out,
            # Its own process group, as in a terminal: Ctrl-C there sends SIGINT to the whole group.
            start_new_session=own_group,
        )
    return Up(proc, log, base)


@pytest.fixture
def up_env(
    e2e_env: Any, pg_database_factory: Callable[[], str], amqp_vhost_factory: Callable[..., str]
) -> dict[str, str]:
    """Own databases and vhost, so no other e2e module's worker takes this stack's messages."""
    return e2e_env.environ(  # type: ignore[no-any-return]
        {
            "DOCROUTE_AMQP_URL": amqp_vhost_factory(),
            "DOCROUTE_INTAKE_DATABASE_URL": pg_database_factory(),
            "DOCROUTE_ROUTING_DATABASE_URL": pg_database_factory(),
            "DOCROUTE_ARCHIVE_DATABASE_URL": pg_database_factory(),
            "DOCROUTE_WEB_WORKERS": "1",
        }
    )


@pytest.fixture
def running(up_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Up, int]]:
    metrics_base = _three_free_ports(19500)
    up = _start({**up_env, "DOCROUTE_METRICS_PORT": str(metrics_base)}, tmp_path)
    try:
        up.wait_ready()
        yield up, metrics_base
    finally:
        if up.proc.poll() is None:
            up.proc.send_signal(signal.SIGTERM)
            try:
                up.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.proc.kill()
                up.proc.wait()


@dataclass
class Poller:
    """Asks intake's API for its register every 0.1 s in a thread and keeps every answer."""

    url: str
    headers: dict[str, str]
    answers: list[int | str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = requests.get(f"{self.url}/v1/directives", headers=self.headers, timeout=30)
                self.answers.append(response.status_code)
            except requests.RequestException as exc:
                self.answers.append(type(exc).__name__)
            self.stop.wait(0.1)


def test_up_serves_all_three_services_against_the_real_servers_and_stops_cleanly(
    running: tuple[Up, int], e2e_env: Any
) -> None:
    up, metrics_base = running
    output = up.output()
    for name in SERVICES:
        assert f"{name}: database migrated" in output
    units = requests.get(f"{up.url('routing')}/v1/units", headers=e2e_env.auth("clerk"), timeout=5)
    assert units.status_code == 200 and units.json()["total"] == 0
    # DOCROUTE_METRICS_PORT is a base: each worker serves its own /metrics on base + its offset.
    for offset, service in enumerate(SERVICES):

        def scraped(port: int = metrics_base + offset) -> str | None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except requests.RequestException:
                return None
            return response.text if response.status_code == 200 else None

        assert "docroute_" in wait_for(scraped, f"{service} worker metrics")
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=60) == 0
    assert "did not stop" not in up.output()  # every child stopped by itself, none had to be aborted


def _register(up: Up, e2e_env: Any, make_pdf: Callable[[str], bytes], number: int) -> str:
    metadata = json.loads((SAMPLES / "directives" / "1393-CVT-CL.json").read_text(encoding="utf-8"))
    metadata["number"] = f"{number}/CVT-CL"
    created = requests.post(
        f"{up.url('intake')}/v1/directives",
        headers=e2e_env.auth("clerk"),
        files={
            "metadata": (None, json.dumps(metadata, ensure_ascii=False).encode(), "application/json"),
            "files": (f"Công văn {number}.pdf", make_pdf(f"cong van {number}"), "application/pdf"),
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _routed_and_archived(up: Up, e2e_env: Any, directive_id: str) -> bool:
    progress = requests.get(
        f"{up.url('routing')}/v1/directives/{directive_id}/progress",
        headers=e2e_env.auth("clerk"),
        timeout=10,
    )
    if progress.status_code != 200 or not progress.json().get("tasks"):
        return False
    records = requests.get(
        f"{up.url('archive')}/v1/records",
        params={"directive": directive_id},
        headers=e2e_env.auth("auditor"),
        timeout=10,
    )
    return records.status_code == 200 and bool(records.json()["items"])


def test_up_restarts_each_killed_worker_while_intake_keeps_answering(
    running: tuple[Up, int], e2e_env: Any, make_pdf: Callable[[str], bytes]
) -> None:
    up, _ = running
    admin = {**e2e_env.auth("admin"), "Content-Type": "application/yaml"}
    imported = requests.post(
        f"{up.url('routing')}/v1/units:import", data=(SAMPLES / "units.yaml").read_bytes(), headers=admin
    )
    assert imported.ok, imported.text
    rules = requests.put(
        f"{up.url('routing')}/v1/rules", data=(SAMPLES / "rules.yaml").read_bytes(), headers=admin
    )
    assert rules.ok, rules.text
    first = _register(up, e2e_env, make_pdf, 5000)
    wait_for(
        lambda: _routed_and_archived(up, e2e_env, first), "the first directive to be routed and archived"
    )

    poller = Poller(up.url("intake"), e2e_env.auth("clerk"))
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    timings: list[str] = []
    try:
        for number, service in enumerate(SERVICES, start=5001):
            old_pid = up.worker_pid(service)
            assert old_pid is not None, f"no {service} worker among docroute up's children"
            started_before = sum(
                1 for line in up.log_lines() if line.get("message") == f"{service} worker started"
            )
            killed_at = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
            # Registered while the worker is down or coming back: it must still be routed and archived.
            directive_id = _register(up, e2e_env, make_pdf, number)

            new_pid = wait_for(
                lambda service=service, old=old_pid: (p := up.worker_pid(service)) not in (None, old) and p,
                f"a new {service} worker",
            )
            wait_for(
                lambda service=service, before=started_before: (
                    sum(1 for line in up.log_lines() if line.get("message") == f"{service} worker started")
                    > before
                ),
                f"the new {service} worker to log that it started",
            )
            back_in = time.monotonic() - killed_at
            restart = [
                line
                for line in up.log_lines()
                if line.get("logger") == "docroute.supervisor" and line.get("child") == f"{service}-worker"
            ]
            died = next(line for line in restart if line.get("signal") == "SIGKILL")
            assert died["pid"] == old_pid and died["attempt"] == 1 and died["delay_seconds"] > 0
            assert any(line.get("pid") == new_pid and "started" in line["message"] for line in restart)
            wait_for(
                lambda directive_id=directive_id: _routed_and_archived(up, e2e_env, directive_id),
                f"a directive registered after the {service} worker's kill to be routed and archived",
            )
            assert up.proc.poll() is None
            timings.append(
                f"{service}: worker back {back_in:.1f} s, work done {time.monotonic() - killed_at:.1f} s"
            )
    finally:
        poller.stop.set()
        thread.join(timeout=30)
    failures = [answer for answer in poller.answers if not (isinstance(answer, int) and 200 <= answer < 300)]
    assert len(poller.answers) > 20 and failures == [], (len(poller.answers), failures[:10])
    print(f"after kill -9: {'; '.join(timings)}; intake answered {len(poller.answers)} polls, all 2xx")


def test_up_gives_up_and_exits_non_zero_when_a_worker_keeps_dying_at_start(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    metrics_base = _three_free_ports(19500)
    # Something else holds the archive worker's metrics port: the worker cannot start, however often it tries.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", metrics_base + 2))
        taken.listen()
        up = _start({**up_env, "DOCROUTE_METRICS_PORT": str(metrics_base)}, tmp_path, "--service", "archive")
        try:
            code = up.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            up.proc.kill()
            up.proc.wait()
            pytest.fail(f"docroute up did not give up:\n{up.output()[-3000:]}")
    assert code == 1
    output = up.output()
    assert (
        "docroute up: archive-worker died 5 times in a row within 30 s of starting (last: exit 1)" in output
    )
    assert "every process was stopped" in output
    assert f"archive worker: DOCROUTE_METRICS_PORT: cannot listen on {metrics_base + 2}" in output
    children = [line for line in up.log_lines() if line.get("child") == "archive-api"]
    assert children, "the archive API was not started"
    assert all(
        not psutil.pid_exists(line["pid"]) or psutil.Process(line["pid"]).status() == "zombie"
        for line in children
    )


def test_a_killed_api_comes_back_and_ctrl_c_stops_everything(up_env: dict[str, str], tmp_path: Path) -> None:
    up = _start(up_env, tmp_path, "--service", "routing", own_group=True)
    try:
        routing = up.url("routing")

        def ready() -> bool:
            assert up.proc.poll() is None, up.output()[-3000:]
            try:
                return requests.get(f"{routing}/readyz", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, "routing /readyz")
        old = up.api_pid("routing")
        assert old is not None
        old_workers = [child.pid for child in psutil.Process(old).children()]
        os.kill(old, signal.SIGKILL)
        # gunicorn's own workers notice their master is gone and exit; a new master binds the port again.
        new = wait_for(
            lambda: (pid := up.api_pid("routing")) not in (None, old) and pid, "a new routing gunicorn"
        )
        wait_for(
            lambda: not any(psutil.pid_exists(pid) for pid in old_workers), "the old master's workers to exit"
        )
        wait_for(lambda: psutil.Process(new).children(), "the new master's worker")
        wait_for(ready, "routing /readyz after the restart")
        children = [child.pid for child in psutil.Process(up.proc.pid).children(recursive=True)]
        assert children

        sent = time.monotonic()
        os.killpg(up.proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal of `make up` does
        assert up.proc.wait(timeout=60) == 0, up.output()[-3000:]
        stopped_in = time.monotonic() - sent
        left = [
            pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
        ]
        assert left == [], f"still running after Ctrl-C: {left}"
        # Each child stopped by itself; none had to be aborted (a worker once hung on a second signal).
        assert "did not stop" not in up.output(), up.output()[-5000:]
        print(f"Ctrl-C stopped docroute up and its {len(children)} processes in {stopped_in:.1f} s")
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)
            up.proc.wait()
