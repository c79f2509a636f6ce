"""Signature reports from pyHanko for a valid, a tampered, an untrusted and an unsigned PDF."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from archive.domain.signatures import BottomLine, SignatureInfo, bottom_line
from archive.signatures import SignatureVerifier


def test_valid_signature_is_intact_trusted_and_covers_the_file(verifier, samples):
    report = verifier.verify(samples.valid)
    assert report.bottom_line is BottomLine.VALID
    (sig,) = report.signatures
    assert sig.intact and sig.trusted and sig.covers_whole_file
    assert sig.signer == "Nguyễn Văn Thử"
    assert sig.signing_time is not None and abs((datetime.now(UTC) - sig.signing_time).days) <= 1


def test_tampered_after_signing_is_invalid(verifier, samples):
    report = verifier.verify(samples.tampered)
    assert report.bottom_line is BottomLine.INVALID
    assert report.signatures[0].intact is False


def test_signature_from_unknown_ca_is_untrusted(verifier, samples):
    report = verifier.verify(samples.untrusted)
    assert report.bottom_line is BottomLine.UNTRUSTED
    sig = report.signatures[0]
    assert sig.intact and not sig.trusted and sig.signer == "Người lạ"


def test_unsigned_pdf_and_non_pdf(verifier, samples):
    assert verifier.verify(samples.unsigned).bottom_line is BottomLine.UNSIGNED
    other = verifier.verify("Báo cáo".encode())
    assert other.bottom_line is BottomLine.UNSIGNED and other.is_pdf is False


def test_empty_trust_store_trusts_nothing(samples):
    report = SignatureVerifier([]).verify(samples.valid)
    assert report.bottom_line is BottomLine.UNTRUSTED


def test_verification_never_modifies_the_pdf(verifier, samples):
    data = bytearray(samples.valid)
    before = hashlib.sha256(data).hexdigest()
    verifier.verify(bytes(data))
    assert hashlib.sha256(data).hexdigest() == before


def test_report_round_trips_through_json_form(verifier, samples):
    report = verifier.verify(samples.valid)
    again = type(report).from_dict(report.to_dict())
    assert again.bottom_line is report.bottom_line
    assert again.signatures[0].signer == "Nguyễn Văn Thử"


def _sig(**kw):
    base = {
        "field_name": "s",
        "signer": "x",
        "signing_time": None,
        "intact": True,
        "valid": True,
        "trusted": True,
        "covers_whole_file": True,
    }
    base.update(kw)
    return SignatureInfo(**base)


def test_bottom_line_worst_signature_wins():
    assert bottom_line([]) is BottomLine.UNSIGNED
    assert bottom_line([_sig(), _sig(trusted=False)]) is BottomLine.UNTRUSTED
    assert bottom_line([_sig(trusted=False), _sig(intact=False)]) is BottomLine.INVALID
    assert bottom_line([_sig(modification_ok=False)]) is BottomLine.INVALID
    assert bottom_line([_sig(), _sig()]) is BottomLine.VALID


def test_stream_from_a_file_reports_like_bytes_and_leaves_the_file_unchanged(verifier, samples, tmp_path):
    path = tmp_path / "văn bản.pdf"
    path.write_bytes(samples.tampered)
    verifier.warm_up()
    with path.open("rb") as fh:
        report = verifier.verify_stream(fh)
    assert report.bottom_line is BottomLine.INVALID
    assert report.to_dict()["signatures"] == verifier.verify(samples.tampered).to_dict()["signatures"]
    assert path.read_bytes() == samples.tampered
