"""The routing service's settings, read once from DOCROUTE_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from shared.settings import CommonSettings, Env, SettingsError, database_url

# gunicorn threads of a routing process (gunicorn.conf.py reads the same default): most wait in long-polls.
DEFAULT_WEB_THREADS = 16


def packaged_holidays() -> Path:
    return Path(str(files("routing").joinpath("data/holidays-vn.yaml")))


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: str
    holidays_file: Path
    rules_file: Path | None
    units_file: Path | None
    task_lease_seconds: int = 300
    overdue_scan_seconds: float = 60.0
    lease_scan_seconds: float = 5.0
    consumers: int | None = None
    # One unacked directive per consumer: a free consumer takes the next one, instead of it waiting behind
    # a busy consumer's prefetched few (row 2 of the bench: p99 from 400–900 ms to 150–480 ms).
    consumer_prefetch: int = 1
    web_threads: int = DEFAULT_WEB_THREADS
    poll_max_per_process: int = DEFAULT_WEB_THREADS // 2
    poll_max_per_unit: int = 2

    def consumers_for(self, dialect: str) -> int:
        """directive_registered consumer threads: 4 on PostgreSQL (each waits on the database most of the
        time, so four keep routing ahead of a steady 50 directives/s); 1 on SQLite, which has one writer."""
        if self.consumers is not None:
            return self.consumers
        return 4 if dialect == "postgresql" else 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        common = CommonSettings.from_env(environ)
        env = Env(environ)
        threads = env.int("DOCROUTE_WEB_THREADS", DEFAULT_WEB_THREADS, min=1, max=256)
        per_process = env.int("DOCROUTE_POLL_MAX_PER_PROCESS", max(1, threads // 2), min=1, max=256)
        if threads > 1 and per_process >= threads:
            # Long-polls on every thread would leave none for /healthz, /readyz or any other request.
            raise SettingsError(
                "DOCROUTE_POLL_MAX_PER_PROCESS",
                f"must be below DOCROUTE_WEB_THREADS ({threads}), got {per_process}",
            )
        rules = env.str("DOCROUTE_RULES_FILE")
        units = env.str("DOCROUTE_UNITS_FILE")
        return cls(
            common=common,
            database_url=database_url("routing", data_dir=common.data_dir, environ=environ),
            holidays_file=env.path("DOCROUTE_HOLIDAYS_FILE", packaged_holidays()),
            rules_file=Path(rules) if rules else None,
            units_file=Path(units) if units else None,
            task_lease_seconds=env.int("DOCROUTE_TASK_LEASE_SECONDS", 300, min=1, max=86400),
            overdue_scan_seconds=env.float("DOCROUTE_OVERDUE_SCAN_SECONDS", 60.0, min=0.05, max=86400),
            lease_scan_seconds=env.float("DOCROUTE_LEASE_SCAN_SECONDS", 5.0, min=0.05, max=3600),
            web_threads=threads,
            poll_max_per_process=per_process,
            poll_max_per_unit=env.int("DOCROUTE_POLL_MAX_PER_UNIT", 2, min=1, max=256),
        )
