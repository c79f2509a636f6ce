"""A worker process's view of its dependencies (paused consumers) and its /readyz, /healthz, /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

#: A WSGI start_response callable.
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class DependencyHealth:
    """Which dependencies someone in this process (a paused consumer) has found unavailable.

    A dependency is down while at least one reporter says so: several consumers of one process pause and
    resume independently. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, dict[object, str]] = {}

    def report_down(self, dependency: str, reporter: object, reason: str) -> None:
        with self._lock:
            self._down.setdefault(dependency, {})[reporter] = reason

    def report_up(self, dependency: str, reporter: object) -> None:
        with self._lock:
            reporters = self._down.get(dependency, {})
            reporters.pop(reporter, None)
            if not reporters:
                self._down.pop(dependency, None)

    def down(self) -> dict[str, str]:
        """Each unavailable dependency with one reporter's reason."""
        with self._lock:
            return {name: next(iter(reporters.values())) for name, reporters in self._down.items()}

    def check(self, dependency: str) -> None:
        """A readiness check: raises while `dependency` is reported down."""
        reason = self.down().get(dependency)
        if reason is not None:
            # Imported here: shared.messaging imports this module's process-wide HEALTH.
            from shared.messaging.outages import DependencyUnavailable

            raise DependencyUnavailable(dependency, reason)


#: The process's one view of its dependencies; consumers report into it, the worker's /readyz reads it.
HEALTH = DependencyHealth()


def worker_app(health: DependencyHealth) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """WSGI app of a worker: /metrics (Prometheus), /healthz (alive), /readyz (503 while a dependency a
    consumer waits for is down, naming it)."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            down = health.down()
            if down:
                body = {
                    "type": "not-ready",
                    "title": "Service Unavailable",
                    "status": 503,
                    "detail": f"not ready: {', '.join(sorted(down))} unavailable",
                    "checks": {name: f"unavailable: {reason}" for name, reason in down.items()},
                }
                return _json(start_response, "503 Service Unavailable", body, "application/problem+json")
            return _json(start_response, "200 OK", {"status": "ready", "checks": {}})
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    return app


def _json(
    start_response: StartResponse, status: str, body: object, content_type: str = "application/json"
) -> list[bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds would flood the logs."""


def serve_worker_endpoints(port: int, health: DependencyHealth = HEALTH, host: str = "0.0.0.0") -> WSGIServer:  # noqa: S104 - scraped from other pods
    """Serve /metrics, /healthz and /readyz on `port` from a daemon thread; returns the server."""
    server = make_server(host, port, worker_app(health), _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-endpoints", daemon=True).start()
    return server
