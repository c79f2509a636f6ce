"""The operator commands: `audit verify` (exit code on a break) and `archive export` (a valid bag)."""

from __future__ import annotations

import bagit
import pytest
import sqlalchemy as sa
from archive.adapters import audit_log
from archive.adapters.db import audit_checkpoints, audit_entries, migrate
from archive.archiving import handle_directive_registered
from archive.audit import write_checkpoint
from archive.cli import archive, audit
from archive_testkit import ARCHIVE, STAGING, directive_event, make_vault, rechain_with_edit, stage
from click.testing import CliRunner
from shared.db import make_engine
from shared.objectstore import FilesystemStore


@pytest.fixture
def env(tmp_path, trust_bundle, verifier, samples):
    data_dir = tmp_path / "var"
    environ = {
        "DOCROUTE_DATA_DIR": str(data_dir),
        "DOCROUTE_JWT_SECRET": "cli-test-secret-0123456789abcdef0123",
        "DOCROUTE_TRUST_STORE": str(trust_bundle),
    }
    engine = make_engine(f"sqlite:///{data_dir / 'archive.db'}")
    migrate(engine)
    store = FilesystemStore(data_dir / "objects")
    store.ensure_bucket(STAGING)
    store.ensure_bucket(ARCHIVE, object_lock=True)
    vault = make_vault(store)
    staged = stage(store, samples.valid, "Công văn 1393.pdf")
    handle_directive_registered(
        directive_event("dir-cli", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
    )
    write_checkpoint(engine=engine, vault=vault)
    yield environ, engine
    engine.dispose()


def test_audit_verify_prints_count_and_head_then_fails_on_a_break(env):
    environ, engine = env
    ok = CliRunner().invoke(audit, ["verify"], env=environ)
    assert ok.exit_code == 0, ok.output
    assert "2 entries, head hash" in ok.output and "matches all 1 locked checkpoints" in ok.output

    with engine.begin() as conn:
        conn.execute(sa.update(audit_entries).where(audit_entries.c.seq == 2).values(action="tampered"))
    broken = CliRunner().invoke(audit, ["verify"], env=environ)
    assert broken.exit_code == 1
    assert "BROKEN at entry 2" in broken.output


def test_audit_verify_names_a_checkpoint_that_agrees_with_the_chain_but_has_no_row(env):
    """The rows are only an index: a locked checkpoint without one that agrees with the chain is not
    tampering (its writer was killed before its row, or the row is in flight); it is named, exit 0."""
    environ, engine = env
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_checkpoints))
    result = CliRunner().invoke(audit, ["verify"], env=environ)
    assert result.exit_code == 0, result.output
    assert "matches all 1 locked checkpoints" in result.output
    assert "1 locked checkpoint(s) agree with the chain but have no row yet" in result.output
    assert "checkpoints/0000000000/00000000000000000002.json" in result.output


def test_archive_export_writes_a_valid_bag(env, tmp_path, samples):
    environ, _ = env
    result = CliRunner().invoke(
        archive, ["export", "--directive", "dir-cli", "--out", str(tmp_path / "out")], env=environ
    )
    assert result.exit_code == 0, result.output
    bag_dir = tmp_path / "out" / "directive-dir-cli"
    assert f"bag written to {bag_dir}" in result.output
    bagit.Bag(str(bag_dir)).validate()
    assert [p.read_bytes() for p in bag_dir.glob("data/records/*/*.pdf")] == [samples.valid]
    missing = CliRunner().invoke(
        archive, ["export", "--directive", "nope", "--out", str(tmp_path / "o2")], env=environ
    )
    assert missing.exit_code != 0 and "nothing of directive nope" in missing.output


def test_audit_verify_reads_the_checkpoints_from_the_bucket_not_the_rows(env):
    """Finding 1: a re-chained edit plus deleting the checkpoint rows in one transaction was reported OK."""
    environ, engine = env
    entries = list(audit_log.iter_entries(engine))
    with engine.begin() as conn:
        rechain_with_edit(conn, entries, seq=1)
        conn.execute(sa.delete(audit_checkpoints))
    result = CliRunner().invoke(audit, ["verify"], env=environ)
    assert result.exit_code == 1, result.output
    assert "2 entries, head hash" in result.output  # the chain alone verifies: only the bucket can tell
    assert "checkpoint rows were deleted" in result.output
    assert "the database was rewritten" in result.output
