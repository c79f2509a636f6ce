"""The archive service's settings, read once from DOCROUTE_* variables into a frozen object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.settings import CommonSettings, Env, SettingsError, database_url

LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
# Entries newer than the last locked checkpoint can be rewritten unnoticed, so the window stays seconds long.
AUDIT_CHECKPOINT_SECONDS = 5
PACKAGED_RETENTION = Path(__file__).resolve().parent / "data" / "retention.yaml"


@dataclass(frozen=True)
class Settings:
    """Everything the archive API and worker need; see README for each variable."""

    common: CommonSettings
    database_url: str
    lock_mode: str
    retention_classes: Path
    trust_store: Path | None
    fixity_period_seconds: int
    audit_checkpoint_seconds: int
    consumers: int = 1
    max_file_bytes: int = 50 * 1024 * 1024

    @property
    def staging_bucket(self) -> str:
        return self.common.object_store.staging_bucket

    @property
    def archive_bucket(self) -> str:
        return self.common.object_store.archive_bucket

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        common = CommonSettings.from_env(environ)
        env = Env(environ)
        default_mode = "COMPLIANCE" if common.is_production else "GOVERNANCE"
        retention = env.path("DOCROUTE_RETENTION_CLASSES", PACKAGED_RETENTION)
        if not retention.is_file():
            raise SettingsError("DOCROUTE_RETENTION_CLASSES", f"no such file: {retention}")
        trust = env.str("DOCROUTE_TRUST_STORE")
        trust_path = Path(trust).expanduser() if trust else None
        if trust_path is not None and not trust_path.is_file():
            raise SettingsError("DOCROUTE_TRUST_STORE", f"no such file: {trust_path}")
        return cls(
            common=common,
            database_url=database_url("archive", data_dir=common.data_dir, environ=environ),
            lock_mode=env.choice("DOCROUTE_LOCK_MODE", default_mode, LOCK_MODES),
            retention_classes=retention,
            trust_store=trust_path,
            fixity_period_seconds=env.int("DOCROUTE_FIXITY_PERIOD_SECONDS", 86400, min=1),
            audit_checkpoint_seconds=env.int(
                "DOCROUTE_AUDIT_CHECKPOINT_SECONDS", AUDIT_CHECKPOINT_SECONDS, min=1, max=60
            ),
            consumers=env.int("DOCROUTE_ARCHIVE_CONSUMERS", 1, min=1, max=8),
            max_file_bytes=env.int(
                "DOCROUTE_ARCHIVE_MAX_FILE_BYTES", 50 * 1024 * 1024, min=1, max=5 * 1024**3
            ),
        )
