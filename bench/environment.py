"""The machine and versions a run measured: CPU, memory, OS, Python, key packages, RabbitMQ, PostgreSQL."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from bench.harness import PG_ADMIN_URL

PACKAGES = (
    "flask",
    "flask-smorest",
    "marshmallow",
    "gunicorn",
    "sqlalchemy",
    "psycopg",
    "alembic",
    "kombu",
    "pika",
    "minio",
    "moto",
    "pyhanko",
)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": f"{platform.system()} {platform.release()} ({platform.platform()})",
        "hostname": platform.node(),
    }


def rabbitmq_version() -> str:
    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", "version"], capture_output=True, text=True, timeout=30, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def postgres_version() -> str:
    engine = sa.create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return "unknown"
    finally:
        engine.dispose()


def versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "rabbitmq": rabbitmq_version(),
        "postgresql": postgres_version(),
    }
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
