"""Outbox and inbox pruning by age: published outbox rows older than their window go, unpublished ones never;
inbox rows older than the dedup window go, younger ones keep dropping duplicates. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from shared.db import make_engine
from shared.envelope import Envelope
from shared.inbox import claim, inbox_table
from shared.outbox import add_to_outbox, outbox_table
from shared.pruning import Pruner, prune_inbox, prune_outbox
from shared.settings import CommonSettings, PruneSettings, SettingsError

from shared import pruning

METADATA = sa.MetaData()
OUTBOX = outbox_table(METADATA)
INBOX = inbox_table(METADATA)
NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        request.applymarker(pytest.mark.integration)
    else:
        url = request.getfixturevalue("sqlite_url")
    engine = make_engine(url)
    METADATA.create_all(engine)
    yield engine
    engine.dispose()


def _outbox(engine: sa.Engine, published_days_ago: list[float | None]) -> list[str]:
    """One row per entry: published that many days before NOW, or never (None); their message ids."""
    ids = []
    with engine.begin() as conn:
        for days in published_days_ago:
            envelope = Envelope.new(
                "routing.task_offered", {"tiêu_đề": "Về việc chuyển đổi số"}, producer="routing"
            )
            add_to_outbox(conn, OUTBOX, envelope, exchange="routing.events")
            if days is not None:
                conn.execute(
                    sa.update(OUTBOX)
                    .where(OUTBOX.c.message_id == envelope.id)
                    .values(published_at=NOW - timedelta(days=days))
                )
            ids.append(envelope.id)
    return ids


def _left(engine: sa.Engine, table: sa.Table) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.message_id)).scalars())


def test_published_outbox_rows_older_than_the_window_go_and_unpublished_ones_never(engine: sa.Engine) -> None:
    old, recent, unpublished, ancient_unpublished = _outbox(engine, [10, 1, None, None])
    with engine.begin() as conn:  # an unpublished row that has waited a month still waits
        conn.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.message_id == ancient_unpublished)
            .values(created_at=NOW - timedelta(days=30))
        )
    assert prune_outbox(engine, OUTBOX, older_than=timedelta(days=7), now=NOW) == 1
    assert _left(engine, OUTBOX) == {recent, unpublished, ancient_unpublished}
    assert old not in _left(engine, OUTBOX)
    assert prune_outbox(engine, OUTBOX, older_than=timedelta(days=7), now=NOW) == 0


def test_outbox_pruning_goes_on_in_batches_until_nothing_old_is_left(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "BATCH", 3)
    keep = _outbox(engine, [8] * 7 + [2])[-1]
    assert prune_outbox(engine, OUTBOX, older_than=timedelta(days=7), now=NOW) == 7
    assert _left(engine, OUTBOX) == {keep}


def test_inbox_rows_older_than_the_dedup_window_go_and_younger_ones_still_drop_duplicates(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "BATCH", 2)
    with engine.begin() as conn:
        for i in range(5):
            assert claim(conn, INBOX, f"cũ-{i}", "routing.intake.directive_registered")
        conn.execute(sa.update(INBOX).values(processed_at=NOW - timedelta(days=20)))
        assert claim(conn, INBOX, "mới", "routing.intake.directive_registered")
        conn.execute(sa.update(INBOX).where(INBOX.c.message_id == "mới").values(processed_at=NOW))
    assert prune_inbox(engine, INBOX, older_than=timedelta(days=14), now=NOW) == 5
    assert _left(engine, INBOX) == {"mới"}
    with engine.begin() as conn:
        # Within the window a copy is still a duplicate; a message pruned away would be handled again.
        assert not claim(conn, INBOX, "mới", "routing.intake.directive_registered")


def test_a_pruner_round_uses_the_settings_windows(engine: sa.Engine) -> None:
    _old, recent = _outbox(engine, [3, 0.5])
    with engine.begin() as conn:
        claim(conn, INBOX, "m1", "c")
        conn.execute(sa.update(INBOX).values(processed_at=NOW - timedelta(days=3)))
    settings = PruneSettings(outbox_retention_seconds=2 * 86400, inbox_retention_seconds=4 * 86400)
    pruner = Pruner("routing", engine, OUTBOX, INBOX, settings, clock=lambda: NOW)
    assert pruner.round() == (1, 0)
    assert _left(engine, OUTBOX) == {recent}
    assert _left(engine, INBOX) == {"m1"}


def test_the_pruning_settings_have_defaults_and_refuse_a_dedup_window_under_a_day() -> None:
    defaults = CommonSettings.from_env({}).pruning
    assert (defaults.outbox_retention_seconds, defaults.inbox_retention_seconds) == (7 * 86400, 14 * 86400)
    assert defaults.interval_seconds == 3600
    chosen = CommonSettings.from_env(
        {"DOCROUTE_INBOX_RETENTION_SECONDS": "172800", "DOCROUTE_PRUNE_INTERVAL_SECONDS": "60"}
    ).pruning
    assert (chosen.inbox_retention_seconds, chosen.interval_seconds) == (172800, 60)
    with pytest.raises(SettingsError, match="DOCROUTE_INBOX_RETENTION_SECONDS"):
        CommonSettings.from_env({"DOCROUTE_INBOX_RETENTION_SECONDS": "3600"})
