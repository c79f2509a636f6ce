"""CPU time per process kind from /proc, read at the edges of a measured window.

Each kind is a function returning its pids at the moment of reading (a gunicorn master and its workers,
the PostgreSQL backends serving some databases, the broker). A pid that appears during the window counts
from zero (all of its CPU is in the window); one that is gone at the end is lost, which the pools and
long-lived workers of a row make rare.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import psutil
import sqlalchemy as sa

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (all its threads), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = text[text.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.Error:
        return []


def broker_pids() -> list[int]:
    """The RabbitMQ node's Erlang VM (beam.smp), shared with whatever else uses the broker."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "beam.smp" and "rabbit" in " ".join(proc.info["cmdline"] or []):
                found.append(proc.pid)
    return found


def backend_pids(admin_url: str, databases: Iterable[str]) -> Callable[[], list[int]]:
    """A reader of the pids of the PostgreSQL backends connected to `databases` (pg_stat_activity)."""
    names = list(databases)
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def read() -> list[int]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = ANY(:names)"), {"names": names}
            )
            return [int(pid) for (pid,) in rows]

    return read


@dataclass
class CpuMeter:
    """Reads the CPU seconds of each kind's processes at start() and stop(); `seconds` is the difference."""

    kinds: Mapping[str, Callable[[], list[int]]]
    _start: dict[str, dict[int, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for kind, pids in self.kinds.items():
            values = {pid: cpu_seconds(pid) for pid in pids()}
            out[kind] = {pid: v for pid, v in values.items() if v is not None}
        return out

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        self.seconds = {
            kind: sum(max(v - self._start.get(kind, {}).get(pid, 0.0), 0.0) for pid, v in now.items())
            for kind, now in end.items()
        }
        return self.seconds


def per_unit_ms(seconds: Mapping[str, float], units: float) -> dict[str, float]:
    """CPU milliseconds per unit of work (a directive) per kind, with `total` added."""
    if units <= 0:
        return {}
    out = {kind: 1000.0 * s / units for kind, s in seconds.items()}
    out["total"] = sum(out.values())
    return out
