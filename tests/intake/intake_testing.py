"""Helpers for the intake tests: settings, a migrated app with a controllable clock, tokens, sample bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from intake.adapters.db import make_engine, migrate
from intake.api import build_deps, create_app
from intake.api.deps import Deps
from intake.settings import Settings
from shared.auth import issue_token

from docroute import demo_pdfs

JWT_SECRET = "intake-test-secret-0123456789abcdef"
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "directives"
SAMPLE_NAMES = ("1393-CVT-CL", "171-CV-BTGTU", "120-KH-BCD")


def minimal_pdf(text: str = "docroute") -> bytes:
    return demo_pdfs.minimal_pdf(text)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


class Clock:
    """A settable clock so tests choose the arrival instant (year boundaries, ordering)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def intake_environ(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DOCROUTE_DATA_DIR": str(tmp_path / "var"),
        "DOCROUTE_JWT_SECRET": JWT_SECRET,
        "DOCROUTE_INTAKE_DATABASE_URL": f"sqlite:///{tmp_path / 'intake.db'}",
        "DOCROUTE_INTAKE_MAX_UPLOAD_BYTES": str(64 * 1024),
        "DOCROUTE_AMQP_URL": "memory://",
    }
    env.update(overrides)
    return env


@dataclass
class IntakeApp:
    app: Flask
    client: FlaskClient
    deps: Deps
    clock: Clock

    def auth(self, role: str = "submitter", sub: str | None = None) -> dict[str, str]:
        unit = "PHONG-VHTT" if role == "unit" else None
        token = issue_token(JWT_SECRET, sub=sub or f"test-{role}", roles=[role], unit=unit)
        return {"Authorization": f"Bearer {token}"}

    def post_json(
        self, body: Mapping[str, Any], *, role: str = "submitter", headers: Mapping[str, str] | None = None
    ) -> Any:
        return self.client.post(
            "/v1/directives",
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            content_type="application/json",
            headers={**self.auth(role), **(headers or {})},
        )

    def post_multipart(
        self,
        metadata: Mapping[str, Any] | str,
        files: list[tuple[bytes, str, str]],
        *,
        role: str = "submitter",
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        import io

        text = metadata if isinstance(metadata, str) else json.dumps(metadata, ensure_ascii=False)
        data: dict[str, Any] = {"metadata": text}
        data["files"] = [(io.BytesIO(content), name, ctype) for content, name, ctype in files]
        return self.client.post(
            "/v1/directives",
            data=data,
            content_type="multipart/form-data",
            headers={**self.auth(role), **(headers or {})},
        )

    def count_rows(self, table: str) -> int:
        import sqlalchemy as sa

        with self.deps.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())

    def staged_objects(self) -> list[str]:
        store = self.deps.staging.store
        root = getattr(store, "root", None)
        if root is not None:
            # The filesystem store names each object's files by a hash of its key; the sidecar holds the key.
            sidecars = (Path(root) / self.deps.staging.bucket / "objects").glob("*/*.json")
            return sorted(json.loads(p.read_text(encoding="utf-8"))["key"] for p in sidecars)
        client = store._client  # S3Store: list through its minio client
        if not client.bucket_exists(self.deps.staging.bucket):
            return []
        return sorted(o.object_name for o in client.list_objects(self.deps.staging.bucket, recursive=True))

    def assert_nothing_stored(self) -> None:
        assert self.count_rows("directives") == 0
        assert self.count_rows("attachments") == 0
        assert self.count_rows("outbox") == 0
        assert self.staged_objects() == []


def migrate_url(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def build_intake_app(
    environ: Mapping[str, str], *, clock: Clock | None = None, migrated: bool = False
) -> IntakeApp:
    settings = Settings.from_env(environ)
    if not migrated:
        migrate_url(settings.database_url)
    deps = build_deps(settings)
    deps.clock = clock or Clock(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    app = create_app(settings, deps)
    return IntakeApp(app=app, client=app.test_client(), deps=deps, clock=deps.clock)  # type: ignore[arg-type]
