"""Fixtures for the intake tests (helpers live in intake_testing.py, importable by the test modules)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from intake_testing import IntakeApp, build_intake_app, intake_environ, migrate_url, minimal_pdf


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; tests copy it instead of running Alembic each time."""
    path = tmp_path_factory.mktemp("intake-template") / "intake.db"
    migrate_url(f"sqlite:///{path}")
    return path


@pytest.fixture
def intake(tmp_path: Path, migrated_sqlite_template: Path) -> Iterator[IntakeApp]:
    """The intake app on SQLite + the filesystem store, migrated, with a fixed clock."""
    shutil.copyfile(migrated_sqlite_template, tmp_path / "intake.db")
    built = build_intake_app(intake_environ(tmp_path), migrated=True)
    yield built
    built.deps.engine.dispose()


@pytest.fixture
def pdf() -> Callable[..., bytes]:
    return minimal_pdf
