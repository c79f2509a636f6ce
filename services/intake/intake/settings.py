"""Intake settings: one frozen object read once from DOCROUTE_* variables at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.settings import CommonSettings, Env, SettingsError, database_url

from intake.closed_loop_settings import ClosedLoopSettings

SERVICE = "intake"
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_ORGANISATION = "STTTT"


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    organisation: str = DEFAULT_ORGANISATION
    # Seconds a 503 asks the caller to wait before retrying when the object store or database is down.
    retry_after: int = 5
    # Outgoing statuses and webhooks (issue 17).
    closed_loop: ClosedLoopSettings = field(default_factory=ClosedLoopSettings)

    @property
    def staging_bucket(self) -> str:
        return self.common.object_store.staging_bucket

    @property
    def max_request_bytes(self) -> int:
        """Whole-request cap: several files, base64 inflating JSON bodies by 4/3, plus the metadata."""
        return self.max_upload_bytes * 4 + 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        common = CommonSettings.from_env(environ)
        env = Env(environ)
        organisation = env.str("DOCROUTE_ORGANISATION", DEFAULT_ORGANISATION) or DEFAULT_ORGANISATION
        if len(organisation) > 64 or not organisation.replace("-", "").replace(".", "").isalnum():
            raise SettingsError(
                "DOCROUTE_ORGANISATION", "must be a short code of letters, digits, '-' or '.'"
            )
        return cls(
            common=common,
            database_url=database_url(SERVICE, data_dir=common.data_dir, environ=environ),
            max_upload_bytes=env.int(
                "DOCROUTE_INTAKE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, min=1, max=5 * 1024**3
            ),
            organisation=organisation,
            closed_loop=ClosedLoopSettings.from_env(environ, production=common.is_production),
        )
