"""E2E: `docroute up` (what `make up` runs) migrates, then runs gunicorn + worker per service."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

DOCROUTE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "docroute"


def _three_free_ports() -> int:
    for base in range(18400, 19400, 3):
        try:
            for port in range(base, base + 3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def test_up_serves_all_three_services_against_the_real_servers_and_stops_cleanly(
    e2e_env: Any,
    pg_database_factory: Callable[[], str],
    amqp_vhost_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    env = e2e_env.environ(
        {
            "DOCROUTE_AMQP_URL": amqp_vhost_factory(),
            "DOCROUTE_INTAKE_DATABASE_URL": pg_database_factory(),
            "DOCROUTE_ROUTING_DATABASE_URL": pg_database_factory(),
            "DOCROUTE_ARCHIVE_DATABASE_URL": pg_database_factory(),
            "DOCROUTE_WEB_WORKERS": "1",
        }
    )
    base = _three_free_ports()
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen([str(DOCROUTE), "up", "--base-port", str(base)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        for port in range(base, base + 3):
            while True:
                assert proc.poll() is None, (tmp_path / "up.log").read_text(errors="replace")[-3000:]
                try:
                    ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                    if ready.status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, f"port {port} never became ready"
                time.sleep(0.2)
        output = (tmp_path / "up.log").read_text(encoding="utf-8", errors="replace")
        for name in ("intake", "routing", "archive"):
            assert f"{name}: database migrated" in output
        units = requests.get(
            f"http://127.0.0.1:{base + 1}/v1/units", headers=e2e_env.auth("clerk"), timeout=5
        )
        assert units.status_code == 200 and units.json()["total"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
