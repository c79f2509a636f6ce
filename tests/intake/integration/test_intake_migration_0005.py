"""Migration 0005 on PostgreSQL and SQLite with rows in place: statuses get their dedupe key, a status may
have no directive, and webhook secrets stored in clear are sealed (and opened again on the way down)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from intake.adapters.db import MIGRATIONS, make_engine
from intake.adapters.secret_box import SEALED_PREFIX, SecretBox
from intake.adapters.tables import metadata
from migration_check import migration_diff
from sqlalchemy.exc import IntegrityError

KEY = "2tE2dTTm0uTzcdOq0cJRIkbmsRRy8mTrJ0PZmRrKJoM="
SECRET = "whsec_" + "QUJD" * 11


def alembic(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _value(column: sa.Column[Any]) -> Any:
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 3, 2)
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.JSON):
        return []
    length = getattr(kind, "length", None) or 20
    return "d-1"[:length] if column.name == "id" else "x"[:length]


def seed_0003(engine: sa.Engine) -> None:
    """A directive, its 01 and a subscription whose secret is in clear, as 0003 stored them."""
    reflected = sa.MetaData()
    reflected.reflect(engine, only=["directives", "status_updates", "webhook_subscriptions", "status_cursor"])
    directives = reflected.tables["directives"]
    row = {c.name: _value(c) for c in directives.columns if not c.nullable}
    with engine.begin() as conn:
        conn.execute(sa.insert(directives).values(**row))
        conn.execute(sa.insert(reflected.tables["status_cursor"]).values(id=1, last_cursor=1))
        conn.execute(
            sa.insert(reflected.tables["status_updates"]).values(
                id="s-1",
                cursor=1,
                directive_id="d-1",
                status_code="01",
                description="Văn bản đã đến, văn thư chưa xử lý",
                occurred_at=datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
                response_for={"document_id": "000.00.00.G22,2021/04/08,1393/CVT-CL"},
            )
        )
        conn.execute(
            sa.insert(reflected.tables["webhook_subscriptions"]).values(
                id="sub-1",
                url="https://eoffice.example/hooks",
                format="json",
                secret=SECRET,
                active=True,
                fanned_cursor=0,
                created_at=datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
                created_by="admin",
            )
        )


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sa.Engine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'intake.db'}"
    # The migration reads the key as the services do.
    monkeypatch.setenv("DOCROUTE_WEBHOOK_SECRET_KEYS", KEY)
    monkeypatch.setenv("DOCROUTE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DOCROUTE_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("DOCROUTE_INTAKE_DATABASE_URL", url)
    built = make_engine(url)
    yield built
    built.dispose()


@pytest.mark.integration
def test_0005_keys_the_statuses_and_seals_the_secrets_and_goes_back(engine: sa.Engine) -> None:
    alembic(engine, "0003")
    seed_0003(engine)
    alembic(engine, "head")
    with engine.connect() as conn:
        assert migration_diff(conn, metadata) == []
        keys = conn.execute(sa.text("SELECT dedupe_key FROM status_updates")).scalars().all()
        stored = conn.execute(sa.text("SELECT secret FROM webhook_subscriptions")).scalar_one()
    assert keys == ["d-1:01"]
    assert stored.startswith(SEALED_PREFIX) and SECRET not in stored
    assert SecretBox((KEY,)).open(stored) == SECRET
    # A status without a directive is allowed now; the same key twice is not.
    row = {
        "cursor": 2,
        "directive_id": None,
        "status_code": "02",
        "description": "Từ chối tiếp nhận văn bản",
        "occurred_at": datetime(2026, 3, 2, 3, 5, tzinfo=UTC),
        "response_for": {},
        "dedupe_key": "refused:a:b",
    }
    status_updates = metadata.tables["status_updates"]
    with engine.begin() as conn:
        conn.execute(sa.insert(status_updates).values(id="s-2", **row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(status_updates).values(id="s-3", **(row | {"cursor": 3})))

    alembic(engine, "0003", down=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT secret FROM webhook_subscriptions")).scalar_one() == SECRET
        assert conn.execute(sa.text("SELECT id FROM status_updates")).scalars().all() == ["s-1"]
