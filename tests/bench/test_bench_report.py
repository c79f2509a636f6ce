"""The benchmark reports: figure verdicts, the JSON document and the Markdown summary on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import Figure, RowResult, build_document, render_markdown, write_reports
from bench.stats import summarize


def _figure(value: float, baseline: float, **target: float) -> Figure:
    return Figure(
        row="1",
        name="directives/s",
        unit="/s",
        value=summarize([value]),
        baseline=summarize([baseline]),
        baseline_name="bare Flask",
        target="t",
        **target,  # type: ignore[arg-type]
    )


def test_ratio_targets_decide_met() -> None:
    assert _figure(30, 100, at_least_ratio=0.25).met is True
    assert _figure(20, 100, at_least_ratio=0.25).met is False
    assert _figure(19, 10, at_most_ratio=2.0).met is True
    assert _figure(21, 10, at_most_ratio=2.0).met is False


def test_absolute_bound_and_ratio_must_both_hold() -> None:
    assert _figure(90, 100, at_least_ratio=0.25, below=100).met is True
    assert _figure(120, 100, at_least_ratio=0.25, below=100).met is False


def test_a_figure_without_target_or_value_has_no_verdict() -> None:
    assert Figure(row="2", name="p50", unit="ms", value=summarize([5])).met is None
    assert Figure(row="2", name="p99", unit="ms", value=None, below=500).met is None


def _document() -> tuple[dict[str, Any], list[RowResult]]:
    measured = RowResult(
        "1",
        "intake",
        figures=[_figure(30, 100, at_least_ratio=0.25)],
        notes=["Tác giả: Cục Viễn thông"],
        details={"latency": float("nan")},
    )
    broken = RowResult("4", "archive", error="RuntimeError: archive worker exited")
    rows = [measured, broken]
    document = build_document(
        rows=rows,
        machine={"cpu_count": 2, "cpu_model": "Test CPU", "memory_gb": 4.0, "os": "Linux"},
        versions={"python": "3.11.9", "rabbitmq": "3.10.8"},
        run={
            "started_at": "2026-01-01T00:00:00+00:00",
            "seconds": 12.0,
            "mode": "quick",
            "command": "make bench",
        },
    )
    return document, rows


def test_document_is_valid_json_without_nan_and_keeps_vietnamese() -> None:
    document, _ = _document()
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    assert "Cục Viễn thông" in text
    row = document["rows"][0]
    assert row["details"]["latency"] is None
    assert row["figures"][0]["ratio"] == 0.3
    assert row["figures"][0]["met"] is True
    assert document["rows"][1]["measured"] is False


def test_markdown_has_the_summary_table_and_names_unmeasured_rows() -> None:
    document, rows = _document()
    text = render_markdown(document, rows)
    assert "| row | figure | value (median, spread) | baseline (same run) | ratio | target | met? |" in text
    assert "| 1 | directives/s | 30.0 /s | bare Flask: 100 /s | 0.30 | t | yes |" in text
    assert "| 4 | archive | not measured |" in text
    assert "Not measured: RuntimeError: archive worker exited" in text
    assert "make bench" in text and "Test CPU" in text


def test_reports_are_written_as_stamped_and_latest_files(tmp_path: Path) -> None:
    document, rows = _document()
    paths = write_reports(tmp_path / "results", "20260101T000000Z", document, rows)
    names = sorted(p.name for p in paths)
    assert names == ["bench-20260101T000000Z.json", "bench-20260101T000000Z.md", "latest.json", "latest.md"]
    latest = json.loads((tmp_path / "results" / "latest.json").read_text(encoding="utf-8"))
    assert latest == json.loads(
        (tmp_path / "results" / "bench-20260101T000000Z.json").read_text(encoding="utf-8")
    )
    assert "Cục Viễn thông" in (tmp_path / "results" / "latest.md").read_text(encoding="utf-8")
    assert not list((tmp_path / "results").glob("*.tmp"))


def test_the_findings_log_closes_every_markdown_report(tmp_path: Path) -> None:
    from bench.report import FINDINGS

    document, rows = _document()
    assert "## Profiles and fixes" not in render_markdown(document, rows)
    text = render_markdown(document, rows, "- row 1: relay 482 → 3,932 msg/s")
    assert text.rstrip().endswith("- row 1: relay 482 → 3,932 msg/s")
    assert "## Profiles and fixes: before → after" in text
    # The committed log is what write_reports appends.
    write_reports(tmp_path, "20260101T000000Z", document, rows)
    written = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert FINDINGS.read_text(encoding="utf-8").strip() in written


def test_a_merged_report_says_which_rows_come_from_which_run() -> None:
    document, rows = _document()
    document["run"] |= {"rows": ["5"], "merged_from": "2026-01-01T00:00:00+00:00", "merged_rows": ["1", "4"]}
    text = render_markdown(document, rows)
    assert "Row 5 was measured in this run; rows 1, 4 come from the run of 2026-01-01T00:00:00" in text


def test_rows_kept_through_several_merges_keep_the_run_that_measured_them() -> None:
    from bench.report import measured_in

    # Run B measured row 3 and kept 1 and 4 from run A; run C measures row 2 and keeps the rest of B.
    run_b = {
        "started_at": "B",
        "rows": ["3"],
        "merged_from": "A",
        "merged_rows": ["1", "4"],
    }
    assert [measured_in(run_b, row) for row in ("1", "3", "4")] == ["A", "B", "A"]
    document, rows = _document()
    document["run"] |= {
        "rows": ["2"],
        "merged_from": "B",
        "merged_rows": ["1", "3", "4"],
        "row_runs": {row: measured_in(run_b, row) for row in ("1", "3", "4")},
    }
    text = render_markdown(document, rows)
    assert (
        "Row 2 was measured in this run; rows 1, 4 come from the run of A; row 3 comes from the run of B"
        in text
    )
