"""Helpers for the closed-loop tests: the integrators' receiver (clients/webhook_receiver) on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

RECEIVER_PATH = Path(__file__).resolve().parents[2] / "clients" / "webhook_receiver" / "webhook_receiver.py"


def receiver_module() -> ModuleType:
    """The receiver shipped to integrators, loaded from its file (it is a script, not a package)."""
    name = "docroute_webhook_receiver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, RECEIVER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Receiver:
    """The integrators' receiver on 127.0.0.1: can answer an outage status, or stop listening altogether."""

    def __init__(self, secret: str = "", port: int = 0) -> None:
        self.module = receiver_module()
        self.received = self.module.Received()
        self.answer = [204]
        self.secret = secret
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/docroute"

    def start(self) -> Receiver:
        handler = self.module.make_handler(self.secret, self.received, self.answer)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stops listening: connections are refused until start() again (on the same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def use_secret(self, secret: str) -> None:
        """The subscription's secret arrives after the server started (it is made by the subscription)."""
        self.secret = secret
        if self.server is not None:
            self.stop()
            self.start()

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        with self.received.lock:
            return list(self.received.deliveries)

    def statuses(self) -> list[tuple[str, str]]:
        """(directive_id, status_code) of each JSON delivery, in arrival order."""
        return [
            (item["json"]["data"]["directive_id"], item["json"]["data"]["status_code"])
            for item in self.deliveries
            if "json" in item
        ]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()
