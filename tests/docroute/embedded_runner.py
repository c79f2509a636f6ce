"""A `docroute run` (what `make run` starts) in a subprocess on free ports, for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.polling import wait_for as wait_for  # re-exported to this folder's tests

ROOT = Path(__file__).resolve().parents[2]
DOCROUTE = ROOT / ".venv" / "bin" / "docroute"


def free_base_port() -> int:
    import socket

    for base in range(18100, 19000, 4):
        ok = True
        for port in range(base - 1, base + 3):  # the console takes the port before intake
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no three consecutive free ports")


class Embedded:
    def __init__(self, data_dir: Path, base_port: int, *args: str) -> None:
        self.args = list(args)
        self.data_dir = data_dir
        self.base_port = base_port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")}
        self.env["DOCROUTE_DATA_DIR"] = str(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = data_dir / "run.log"

    @property
    def console(self) -> str:
        return f"http://127.0.0.1:{self.base_port - 1}"

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.base_port + index}"

    def start(self) -> None:
        log = self.output.open("ab")
        self.proc = subprocess.Popen(
            [str(DOCROUTE), "run", "--base-port", str(self.base_port), *self.args],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        for index in (-1, 0, 1, 2):
            while True:
                assert self.proc.poll() is None, self.output.read_text(errors="replace")[-3000:]
                try:
                    if requests.get(self.url(index) + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "embedded services did not come up"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def token(self, role: str, unit: str | None = None) -> dict[str, str]:
        args = [str(DOCROUTE), "token", "--role", role] + (["--unit", unit] if unit else [])
        token = subprocess.run(args, env=self.env, check=True, capture_output=True, text=True).stdout.strip()
        return {"Authorization": f"Bearer {token}"}
