"""Helpers for routing's tests: an app around real or fake dependencies, tokens, sample directives."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection
from routing.adapters import tables as t
from routing.adapters.db import migrate
from routing.adapters.unit_queue import KombuUnitQueues
from routing.api import create_app
from routing.api.deps import Deps, load_calendar
from routing.settings import Settings, packaged_holidays
from shared.auth import TokenVerifier, issue_token
from shared.db import make_engine
from shared.envelope import Envelope
from shared.messaging import Publisher, declare_topology
from shared.objectstore import FilesystemStore
from shared.outbox import OutboxRelay

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SECRET = "routing-test-secret-0123456789abcdef"


@dataclass
class RoutingApp:
    app: Flask
    client: FlaskClient
    deps: Deps
    settings: Settings
    amqp_url: str

    def token(self, role: str, unit: str | None = None) -> str:
        return issue_token(SECRET, sub=f"t-{role}-{unit or ''}", roles=[role], unit=unit)

    def auth(self, role: str, unit: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, unit)}"}

    def relay(self) -> int:
        """Publishes the outbox as the worker would."""
        with Publisher(self.amqp_url, confirm_timeout=5) as publisher:
            return OutboxRelay(self.deps.engine, t.outbox, publisher).run_once()

    def load_samples(self) -> None:
        clerk = self.auth("clerk")
        r = self.client.post(
            "/v1/units:import",
            data=(SAMPLES / "units.yaml").read_bytes(),
            headers=clerk | {"Content-Type": "application/yaml"},
        )
        assert r.status_code == 200, r.get_json()
        r = self.client.put(
            "/v1/rules",
            data=(SAMPLES / "rules.yaml").read_bytes(),
            headers=clerk | {"Content-Type": "application/yaml"},
        )
        assert r.status_code in (200, 201), r.get_json()


def sample_metadata(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / "directives" / name).read_text(encoding="utf-8"))


def registered_event(
    name: str,
    *,
    directive_id: str | None = None,
    arrival_date: date = date(2021, 4, 13),
    arrival_number: int = 1,
    attachments: list[dict[str, Any]] | None = None,
) -> Envelope:
    return Envelope.new(
        "intake.directive_registered",
        {
            "directive_id": directive_id or str(uuid.uuid4()),
            "arrival_number": arrival_number,
            "arrival_date": arrival_date.isoformat(),
            "received_at": f"{arrival_date.isoformat()}T08:00:00+07:00",
            "metadata": sample_metadata(name),
            "attachments": attachments or [],
        },
        producer="intake",
    )


def build_routing_app(tmp_path: Path, db_url: str | None = None, amqp_url: str = "memory://") -> RoutingApp:
    environ = {
        "DOCROUTE_DATA_DIR": str(tmp_path),
        "DOCROUTE_JWT_SECRET": SECRET,
        "DOCROUTE_AMQP_URL": amqp_url,
        "DOCROUTE_ROUTING_DATABASE_URL": db_url or f"sqlite:///{tmp_path / 'routing.db'}",
    }
    settings = Settings.from_env(environ)
    engine = make_engine(settings.database_url)
    migrate(engine)
    deps = Deps(
        engine=engine,
        queues=KombuUnitQueues(amqp_url),
        store=FilesystemStore(tmp_path / "objects"),
        calendar=load_calendar(packaged_holidays()),
        verifier=TokenVerifier(settings.common.auth),
        staging_bucket="docroute-staging",
        lease_seconds=60,
    )
    app = create_app(settings, deps)
    with Connection(amqp_url) as conn:
        declare_topology(conn, delivery_limit=5)
    return RoutingApp(app, app.test_client(), deps, settings, amqp_url)
