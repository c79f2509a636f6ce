"""gunicorn settings shared by the services: bind, workers, JSON access log, prometheus multiprocess."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from shared.settings import Env

# The 30 s long-poll of the routing queue must finish well inside a worker's timeout.
MIN_TIMEOUT = 31
_OWN_DIR_PREFIX = "docroute-prometheus-"
_OWN_DIR_ENV = "DOCROUTE_PROMETHEUS_DIR_CREATED"


class JsonAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn logger whose access lines are JSON objects (one per line), correlation id included."""

    def access(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
            return
        headers = {str(name).lower(): str(value) for name, value in (resp.headers or [])}
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else str(resp.status)
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": int(status) if status.isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "remote": environ.get("REMOTE_ADDR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "correlation_id": headers.get("x-correlation-id"),
        }
        try:
            self.access_log.info(json.dumps(line, ensure_ascii=False))
        except Exception:  # noqa: BLE001 - an access line must never break a response
            self.error_log.exception("failed to write the access log line")


def settings_for(default_port: int, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The module-level names a service's gunicorn.conf.py exports (gunicorn reads them by name)."""
    env = Env(environ)
    port = env.int("DOCROUTE_PORT", default_port, min=1, max=65535)
    settings: dict[str, Any] = {
        "bind": [env.str("DOCROUTE_BIND", f"0.0.0.0:{port}")],
        "workers": env.int("DOCROUTE_WEB_WORKERS", 2, min=1, max=64),
        "threads": env.int("DOCROUTE_WEB_THREADS", 4, min=1, max=256),
        "worker_class": "gthread",
        "timeout": env.int("DOCROUTE_WEB_TIMEOUT", 60, min=MIN_TIMEOUT),
        "graceful_timeout": env.int("DOCROUTE_WEB_GRACEFUL_TIMEOUT", 35, min=1),
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": (env.str("DOCROUTE_LOG_LEVEL", "INFO") or "INFO").lower(),
        "logger_class": JsonAccessLogger,
        # Tracebacks of a crashed worker must not be the only record; gunicorn logs them to errorlog.
        "capture_output": True,
        "on_starting": on_starting,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }
    control_socket = env.str("DOCROUTE_WEB_CONTROL_SOCKET")
    if control_socket:
        settings["control_socket"] = control_socket
    else:
        # gunicorn's default control socket is one path per user: three services (or parallel test runs)
        # on one machine would fight over it, so it is opt-in.
        settings["control_socket_disable"] = True
    return settings


def on_starting(server: Any) -> None:
    """Prepare PROMETHEUS_MULTIPROC_DIR before any worker forks (the metric files live there)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        # Each worker is its own process: without a shared directory every scrape would see one worker.
        directory = tempfile.mkdtemp(prefix=_OWN_DIR_PREFIX)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        os.environ[_OWN_DIR_ENV] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    # Files of a previous run would be added to this run's counters.
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    server.log.info("prometheus multiprocess directory: %s", directory)


def child_exit(server: Any, worker: Any) -> None:
    """Mark a dead worker's live gauges as gone so /metrics stops reporting them."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    # Imported here: prometheus_client picks its value backend at import, after the directory is set.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the multiprocess directory on_starting created (one given by the operator is left alone)."""
    directory = os.environ.pop(_OWN_DIR_ENV, None)
    if directory and Path(directory).name.startswith(_OWN_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)
