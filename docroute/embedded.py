"""The embedded mode: all three services and their workers in one process, no servers needed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.runtime import Worker, run_all
from werkzeug.serving import BaseWSGIServer, make_server

from docroute.services import SERVICES

log = logging.getLogger("docroute.embedded")


@dataclass
class HttpServer:
    """Serves one Flask app with werkzeug's threaded server until the stop event is set."""

    name: str
    host: str
    port: int
    app: Any

    def run(self, stop: threading.Event) -> None:
        server: BaseWSGIServer = make_server(self.host, self.port, self.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name=f"http-{self.name}", daemon=True)
        thread.start()
        try:
            stop.wait()
        finally:
            server.shutdown()
            thread.join(timeout=10)


def prepare(host: str = "127.0.0.1", ports: Mapping[str, int] | None = None) -> list[Worker]:
    """Migrates each service's database and builds its HTTP server and its worker."""
    workers: list[Worker] = []
    for spec in SERVICES:
        settings = spec.settings()
        spec.migrate(settings)
        port = (ports or {}).get(spec.name, spec.port)
        workers.append(HttpServer(spec.name, host, port, spec.create_app(settings)))
        workers.append(spec.build_worker(settings))
    return workers


def console_server(host: str, port: int) -> HttpServer:
    """The console over the three APIs (their URLs come from the console's settings)."""
    from console.app import create_app

    return HttpServer("console", host, port, create_app())


def run(host: str = "127.0.0.1", stop: threading.Event | None = None) -> None:
    """Runs everything until SIGINT/SIGTERM (or the given stop event)."""
    run_all(prepare(host), stop or threading.Event())
