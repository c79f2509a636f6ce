"""The request bodies the benchmarks send: unique document numbers, sized PDFs, multipart encoding."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bench.cli import parse_rows
from bench.payloads import dated, directive_body, numbered, pdf_of_size, sample_directives


def test_numbered_keeps_the_notation_so_the_sample_rules_still_match() -> None:
    samples = {s["number"]: s for s in sample_directives()}
    assert numbered(samples["120/KH-BCĐ"], 1000001)["number"] == "1000001/KH-BCĐ"
    assert numbered(samples["171-CV/BTGTU"], 7)["number"] == "7-CV/BTGTU"
    assert samples["120/KH-BCĐ"]["number"] == "120/KH-BCĐ"  # the sample itself is left alone


def test_pdf_of_size_is_a_pdf_close_to_the_requested_size() -> None:
    pdf = pdf_of_size(100 * 1024)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert abs(len(pdf) - 100 * 1024) < 2048


def test_directive_body_is_multipart_with_utf8_metadata_and_the_file() -> None:
    metadata = {"subject": "Tháng hành động vì an toàn thực phẩm"}
    pdf = pdf_of_size(2048)
    body, content_type = directive_body(metadata, pdf)
    boundary = content_type.split("boundary=", 1)[1]
    assert content_type.startswith("multipart/form-data; ")
    assert body.endswith(f"--{boundary}--\r\n".encode())
    assert json.dumps(metadata, ensure_ascii=False).encode("utf-8") in body
    assert pdf in body
    assert 'filename="văn-bản.pdf"'.encode() in body


def test_rows_option_accepts_a_comma_list_and_refuses_unknown_rows() -> None:
    assert parse_rows("3,1,3") == ["1", "3"]
    with pytest.raises(Exception, match="rows must be"):
        parse_rows("1,9")


def test_dated_moves_issue_and_due_dates_together_and_keeps_the_rest() -> None:
    samples = {m["number"]: m for m in sample_directives()}
    original = samples["120/KH-BCĐ"]
    moved = dated(original, dt.date(2026, 11, 30))
    assert moved["issued_date"] == "2026-11-30"
    span = dt.date.fromisoformat(original["due_date"]) - dt.date.fromisoformat(original["issued_date"])
    assert dt.date.fromisoformat(moved["due_date"]) - dt.date(2026, 11, 30) == span
    assert {k: v for k, v in moved.items() if k not in ("issued_date", "due_date")} == {
        k: v for k, v in original.items() if k not in ("issued_date", "due_date")
    }
    undated = next(m for m in samples.values() if not m.get("due_date"))
    assert dated(undated, dt.date(2026, 11, 30)).get("due_date") is None
