"""What the routing API needs at run time, built once by create_app (or handed in by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from shared.auth import TokenVerifier, Verifier
from shared.objectstore import ObjectStore, make_store
from sqlalchemy.engine import Engine

from routing.adapters.db import connect
from routing.adapters.unit_queue import KombuUnitQueues, UnitQueues
from routing.api.pollgate import PollGate
from routing.domain.calendar import WorkingCalendar
from routing.settings import Settings


@dataclass
class Deps:
    engine: Engine
    queues: UnitQueues
    store: ObjectStore
    calendar: WorkingCalendar
    verifier: Verifier
    staging_bucket: str
    lease_seconds: int = 300
    # Unit codes a poll found in the database; units are deactivated, never deleted.
    known_units: set[str] = field(default_factory=set)
    poll_gate: PollGate = field(default_factory=lambda: PollGate(per_process=8, per_unit=2))


def load_calendar(path: Path) -> WorkingCalendar:
    with path.open(encoding="utf-8") as fh:
        return WorkingCalendar.from_mapping(yaml.safe_load(fh) or {})


def build_deps(settings: Settings) -> Deps:
    common = settings.common
    return Deps(
        engine=connect(settings.database_url),
        queues=KombuUnitQueues(common.amqp_url, delivery_limit=common.consumer_delivery_limit),
        store=make_store(common),
        calendar=load_calendar(settings.holidays_file),
        verifier=TokenVerifier(common.auth),
        staging_bucket=common.object_store.staging_bucket,
        lease_seconds=settings.task_lease_seconds,
        poll_gate=PollGate(per_process=settings.poll_max_per_process, per_unit=settings.poll_max_per_unit),
    )
