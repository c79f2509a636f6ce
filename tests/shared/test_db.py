"""make_engine, transaction helpers and programmatic migrations on SQLite and PostgreSQL."""

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from shared.db import make_engine, run_migrations, session_scope, transaction
from sqlalchemy.orm import sessionmaker

META = sa.MetaData()
NOTES = sa.Table("notes", META, sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text))


def test_sqlite_engine_has_wal_foreign_keys_and_busy_timeout(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'svc.db'}")
    assert (tmp_path / "nested" / "dir").is_dir()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_sqlite_engine_is_usable_from_other_threads(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    META.create_all(engine)
    errors = []

    def write(i: int) -> None:
        try:
            with transaction(engine) as conn:
                conn.execute(sa.insert(NOTES).values(text=f"ghi chú {i}"))
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(NOTES)).scalar() == 8


def test_in_memory_sqlite_is_one_database_for_all_connections():
    engine = make_engine("sqlite://")
    META.create_all(engine)
    with transaction(engine) as conn:
        conn.execute(sa.insert(NOTES).values(text="một"))
    seen = []
    t = threading.Thread(
        target=lambda: seen.append(engine.connect().execute(sa.select(NOTES.c.text)).scalar())
    )
    t.start()
    t.join()
    assert seen == ["một"]


def test_transaction_rolls_back_on_error(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        conn.execute(sa.insert(NOTES).values(text="lost"))
        raise RuntimeError("boom")
    with transaction(engine) as conn:
        conn.execute(sa.insert(NOTES).values(text="Quyết định số 15/QĐ-BNV"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(NOTES.c.text)).scalars().all() == ["Quyết định số 15/QĐ-BNV"]
    engine.dispose()


def test_session_scope_commits_or_rolls_back(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    factory = sessionmaker(engine)
    with session_scope(factory) as session:
        session.execute(sa.insert(NOTES).values(text="kept"))
    with pytest.raises(ValueError), session_scope(factory) as session:
        session.execute(sa.insert(NOTES).values(text="dropped"))
        raise ValueError
    with engine.connect() as conn:
        assert conn.execute(sa.select(NOTES.c.text)).scalars().all() == ["kept"]
    engine.dispose()


def _pings(engine) -> list[int]:
    calls: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_connection) -> bool:
        calls.append(1)
        return original(dbapi_connection)

    engine.dialect.do_ping = counting
    return calls


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.integration
def test_postgresql_engine_pings_only_a_connection_back_from_idle(pg_url: str):
    engine = make_engine(pg_url, ping_after_idle=0.3)
    pings = _pings(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SHOW server_encoding")).scalar() == "UTF8"
    for _ in range(5):  # back to back, as request after request: no ping
        _backend_pid(engine)
    assert pings == []
    time.sleep(0.4)
    _backend_pid(engine)
    assert len(pings) == 1
    engine.dispose()


@pytest.mark.integration
def test_a_connection_the_server_dropped_while_idle_is_replaced_at_checkout(pg_url: str):
    engine = make_engine(pg_url, ping_after_idle=0.1)
    first = _backend_pid(engine)
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    time.sleep(0.2)
    # The ping at checkout finds the dead connection; the pool connects afresh and the caller never knows.
    second = _backend_pid(engine)
    assert second != first
    admin.dispose()
    engine.dispose()


ENV_PY = """
from alembic import context
import sqlalchemy as sa

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
"""

VERSION = """
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("greetings", sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text))
    op.execute("INSERT INTO greetings (text) VALUES ('Xin chào')")


def downgrade():
    op.drop_table("greetings")
"""


def test_run_migrations_upgrades_to_head_once(db_url: str, tmp_path: Path):
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY, encoding="utf-8")
    (scripts / "script.py.mako").write_text("", encoding="utf-8")
    (scripts / "versions" / "0001_greetings.py").write_text(VERSION, encoding="utf-8")
    engine = make_engine(db_url)
    run_migrations(engine, scripts)
    run_migrations(engine, str(scripts))  # already at head: nothing runs twice
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT text FROM greetings")).scalars().all() == ["Xin chào"]
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    engine.dispose()
