"""Intake settings: one frozen object read once from DOCROUTE_* variables at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import CommonSettings, Env, SettingsError, database_url

from intake.closed_loop_settings import ClosedLoopSettings

SERVICE = "intake"
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_ORGANISATION = "STTTT"
DEFAULT_STAGING_ORPHAN_SECONDS = 3600
# A request whose body is larger than this counts as a large upload (see max_large_uploads).
LARGE_UPLOAD_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_LARGE_UPLOADS = 1


# What one API process holds at rest (measured: 79 MiB RSS for a gunicorn worker after start-up), and
# what a request holds beyond that: a large upload's file while the S3 client stages it (measured: +53 MiB
# RSS for three 50 MiB files in one JSON body), a small request at most twice its 8 MiB body.
PROCESS_BASELINE_BYTES = 96 * 1024 * 1024
LARGE_UPLOAD_OVERHEAD_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class UploadBudget:
    """Worst-case memory and temporary disk (TMPDIR) of one intake API pod, from its settings."""

    memory_bytes: int
    spool_bytes: int


def upload_budget(settings: Settings, *, workers: int, threads: int) -> UploadBudget:
    """What a pod of `workers` gunicorn processes × `threads` threads needs at most (see deploy/k8s).

    Per process: its baseline; each large-upload slot holds one file in memory while it is staged and the
    whole request body on disk; every other thread a small request (at most LARGE_UPLOAD_BYTES of body).
    """
    large = min(settings.max_large_uploads, threads)
    small = threads - large
    memory = (
        PROCESS_BASELINE_BYTES
        + large * (settings.max_upload_bytes + LARGE_UPLOAD_OVERHEAD_BYTES)
        + small * 2 * LARGE_UPLOAD_BYTES
    )
    spool = large * settings.max_request_bytes + small * LARGE_UPLOAD_BYTES
    return UploadBudget(memory_bytes=workers * memory, spool_bytes=workers * spool)


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    organisation: str = DEFAULT_ORGANISATION
    # Seconds a 503 asks the caller to wait before retrying when the object store or database is down.
    retry_after: int = 5
    # edXML packets: the CAs whose XML signatures count as trusted, and whether a packet whose signature
    # is invalid or absent is refused (by default it is recorded and taken).
    trust_store: Path | None = None
    require_packet_signature: bool = False
    # Large uploads handled at once by one process; more get 503 + Retry-After. Each one may hold a file
    # in memory while it is staged to S3 and its body on disk (TMPDIR): deploy/k8s sizes both from this.
    max_large_uploads: int = DEFAULT_MAX_LARGE_UPLOADS
    # A staged upload no directive references is removed once this old (no request lives that long).
    staging_orphan_seconds: int = DEFAULT_STAGING_ORPHAN_SECONDS
    # Outgoing statuses and webhooks (issue 17).
    closed_loop: ClosedLoopSettings = field(default_factory=ClosedLoopSettings)

    @property
    def staging_bucket(self) -> str:
        return self.common.object_store.staging_bucket

    @property
    def staging_sweep_interval(self) -> float:
        """Seconds between staging sweeps: a quarter of the orphan age, between 1 and 15 minutes."""
        return float(min(900, max(60, self.staging_orphan_seconds // 4)))

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
            trust_store=_existing_file(env, "DOCROUTE_TRUST_STORE"),
            require_packet_signature=env.bool("DOCROUTE_EDXML_REQUIRE_SIGNATURE", False),
            max_large_uploads=env.int(
                "DOCROUTE_INTAKE_MAX_LARGE_UPLOADS", DEFAULT_MAX_LARGE_UPLOADS, min=1, max=64
            ),
            # At least 5 minutes: a registration stages its files before it commits, and no request may
            # still be running when its files count as orphans.
            staging_orphan_seconds=env.int(
                "DOCROUTE_STAGING_ORPHAN_SECONDS", DEFAULT_STAGING_ORPHAN_SECONDS, min=300, max=30 * 86400
            ),
            closed_loop=ClosedLoopSettings.from_env(
                environ, production=common.is_production, data_dir=common.data_dir
            ),
        )


def _existing_file(env: Env, name: str) -> Path | None:
    value = env.str(name)
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise SettingsError(name, f"no such file: {path}")
    return path
