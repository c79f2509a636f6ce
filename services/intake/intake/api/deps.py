"""The collaborators the intake API needs, built once per app from Settings (or given by tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from shared.auth import TokenVerifier, Verifier
from shared.objectstore import make_store
from sqlalchemy.engine import Engine

from intake.adapters.db import make_engine
from intake.adapters.repository import DirectiveRepository
from intake.adapters.secret_box import SecretBox
from intake.adapters.staging import StagingArea
from intake.handlers import utc_now
from intake.settings import Settings
from intake.status import Department


@dataclass
class Deps:
    settings: Settings
    engine: Engine
    repository: DirectiveRepository
    staging: StagingArea
    verifier: Verifier
    clock: Callable[[], datetime] = field(default=utc_now)
    # Slots for large uploads in this process (Settings.max_large_uploads); see api.directives.
    large_uploads: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.large_uploads = threading.BoundedSemaphore(self.settings.max_large_uploads)

    @property
    def department(self) -> Department:
        """Who the outgoing statuses come from (the department, its desk and contact)."""
        return self.settings.closed_loop.department(self.settings.organisation)

    @property
    def secret_box(self) -> SecretBox:
        """Seals and opens the webhook secrets at rest (DOCROUTE_WEBHOOK_SECRET_KEYS)."""
        return self.settings.closed_loop.secret_box

    def check_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def build_deps(settings: Settings) -> Deps:
    engine = make_engine(settings.database_url)
    return Deps(
        settings=settings,
        engine=engine,
        repository=DirectiveRepository(engine),
        staging=StagingArea(make_store(settings.common), settings.staging_bucket),
        verifier=TokenVerifier(settings.common.auth),
    )
