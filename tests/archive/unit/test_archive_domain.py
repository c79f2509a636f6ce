"""Pure archive rules: retention classes, legal holds, the audit hash chain, folding, fixity judgments."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from archive.adapters.retention_config import load_policy
from archive.domain.audit import (
    GENESIS_HASH,
    AuditEvent,
    Checkpoint,
    canonical_json,
    check_against_checkpoint,
    next_entry,
    verify_chain,
)
from archive.domain.errors import (
    InvalidRetentionConfig,
    MissingReason,
    UnknownRetentionClass,
)
from archive.domain.fixity import judge
from archive.domain.records import Record, archive_key, change_legal_hold, fold
from archive.domain.retention import RetentionPolicy, add_years
from archive.settings import PACKAGED_RETENTION

NOW = datetime(2024, 2, 29, 10, 0, tzinfo=UTC)


def test_packaged_classes_and_type_defaults():
    policy = load_policy(PACKAGED_RETENTION)
    assert set(policy.classes) == {"5", "10", "20", "50", "70", "vinh_vien"}
    assert policy.class_for("Công văn") == "10"
    assert policy.class_for("QUYẾT ĐỊNH") == "vinh_vien"
    assert policy.class_for("Kế hoạch") == "20"
    assert policy.class_for("Loại lạ") == "10"
    assert policy.class_for("Quyết định", is_report=True) == "10"


def test_retain_until_follows_the_class_and_leap_days():
    policy = load_policy(PACKAGED_RETENTION)
    five = policy.decide("5", NOW)
    assert five.retain_until == datetime(2029, 2, 28, 10, 0, tzinfo=UTC)
    permanent = policy.decide("vinh_vien", NOW)
    assert permanent.retain_until.year == 2024 + 70
    assert not hasattr(permanent, "legal_hold")  # a hold is an admin's act, never a class's
    with pytest.raises(UnknownRetentionClass):
        policy.decide("99", NOW)
    assert add_years(datetime(2023, 3, 1, tzinfo=UTC), 1) == datetime(2024, 3, 1, tzinfo=UTC)


def test_a_long_class_needs_a_valid_signature():
    """Finding 9: the declared document type alone gives at most the organisation's ordinary class."""
    policy = load_policy(PACKAGED_RETENTION)
    assert policy.grant("vinh_vien", signature_valid=True) == "vinh_vien"
    assert policy.grant("vinh_vien", signature_valid=False) == "10"
    assert policy.grant("20", signature_valid=False) == "10"
    assert policy.grant("5", signature_valid=False) == "5"
    capped = RetentionPolicy.from_mapping(
        {"classes": {"5": 5, "20": 20, "p": "permanent"}, "default_class": "5", "unsigned_max_class": "20",
         "permanent_lock_years": 30}
    )  # fmt: skip
    assert capped.grant("p", signature_valid=False) == "20"
    assert capped.decide("p", NOW).retain_until.year == 2024 + 30


def test_bad_retention_config_is_refused():
    with pytest.raises(InvalidRetentionConfig):
        RetentionPolicy.from_mapping({"classes": {"5": 5}, "default_class": "10"})
    with pytest.raises(InvalidRetentionConfig):
        RetentionPolicy.from_mapping({"classes": {"x": -1}, "default_class": "x"})


def _record(**kw) -> Record:
    base = Record(
        id="r1",
        directive_id="d1",
        source_event_id="e1",
        source_kind="attachment",
        source_ref="a1",
        filename="f.pdf",
        content_type="application/pdf",
        size=1,
        sha256="0" * 64,
        bucket="b",
        key=archive_key("d1", "0" * 64),
        version_id=None,
        retention_class="10",
        retain_until=NOW,
        lock_mode="GOVERNANCE",
        legal_hold=False,
        legal_hold_reason=None,
        signature_status="unsigned",
        archived_at=NOW,
    )
    return replace(base, **kw)


def test_legal_hold_rules():
    with pytest.raises(MissingReason):
        change_legal_hold(_record(), on=True, reason="  ")
    held = change_legal_hold(_record(), on=True, reason="Thanh tra")
    assert held.legal_hold and held.legal_hold_reason == "Thanh tra"
    # Finding 9: a permanent record's hold is no longer locked in by its class; the admin decides.
    lifted = change_legal_hold(
        _record(retention_class="vinh_vien", legal_hold=True), on=False, reason="hết hạn"
    )
    assert not lifted.legal_hold


def _chain(n: int):
    entries, prev_seq, prev_hash = [], 0, GENESIS_HASH
    for i in range(n):
        event = AuditEvent(
            action="read",
            actor="kiểm toán",
            occurred_at=NOW + timedelta(seconds=i),
            details={"i": i, "ghi chú": "đã đọc"},
        )
        entry = next_entry(event, prev_seq=prev_seq, prev_hash=prev_hash)
        entries.append(entry)
        prev_seq, prev_hash = entry.seq, entry.hash
    return entries


def test_entry_hash_is_sha256_of_previous_hash_and_canonical_json():
    first = _chain(1)[0]
    canonical = canonical_json(
        seq=1,
        action="read",
        actor="kiểm toán",
        occurred_at=NOW,
        directive_id=None,
        record_id=None,
        source_event_id=None,
        details={"ghi chú": "đã đọc", "i": 0},
    )
    assert "kiểm toán".encode() in canonical  # UTF-8, not \u escapes
    assert first.hash == hashlib.sha256(GENESIS_HASH.encode() + canonical).hexdigest()


def test_chain_verification_finds_first_broken_entry():
    entries = _chain(5)
    good = verify_chain(entries)
    assert good.ok and good.count == 5 and good.head_hash == entries[-1].hash
    altered = list(entries)
    altered[2] = replace(entries[2], actor="kẻ gian")
    bad = verify_chain(altered)
    assert not bad.ok and bad.broken_seq == 3 and bad.count == 2
    missing = entries[:1] + entries[2:]
    assert verify_chain(missing).broken_seq == 2


def test_checkpoint_comparison_detects_rewritten_history():
    entries = _chain(3)
    checkpoint = Checkpoint(count=3, head_hash=entries[-1].hash, created_at=NOW)
    assert check_against_checkpoint(entries[-1].hash, 3, checkpoint) is None
    assert "rewritten" in (check_against_checkpoint("f" * 64, 3, checkpoint) or "")
    assert check_against_checkpoint(None, 2, checkpoint) is not None


def test_fold_ignores_diacritics_and_case():
    assert fold("Đề án Hỏa tốc") == fold("de an hoa toc")
    assert fold("THƯỢNG KHẨN") == "thuong khan"


def test_fixity_judgment():
    sha = "a" * 64
    assert judge("r", expected_sha256=sha, actual_sha256=sha).ok
    assert not judge("r", expected_sha256=sha, actual_sha256="b" * 64).ok
    assert not judge("r", expected_sha256=sha, actual_sha256=None).ok
    assert not judge("r", expected_sha256=sha, actual_sha256=sha, expected_version="1", actual_version="2").ok
