"""Report writing: figures and row results into bench/results/<stamp>.json, .md and latest.{json,md}."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Summary, meets, ratio, summarize


@dataclass(frozen=True)
class Figure:
    """One line of the summary table: a measured figure, its same-run baseline and its target."""

    row: str
    name: str
    unit: str
    value: Summary | None
    baseline: Summary | None = None
    baseline_name: str | None = None
    target: str = "—"
    at_least_ratio: float | None = None  # met when value/baseline >= this
    at_most_ratio: float | None = None  # met when value/baseline <= this (latencies "within 2x")
    below: float | None = None  # met when the value's median < this
    at_least: float | None = None  # met when the value's median >= this
    note: str | None = None
    verdict: bool | None = None  # a verdict read back from an earlier report

    @property
    def ratio(self) -> float | None:
        return ratio(
            self.value.median if self.value else None, self.baseline.median if self.baseline else None
        )

    @property
    def met(self) -> bool | None:
        """None when not measured or without a target; otherwise every stated condition must hold."""
        if self.value is None:
            return None
        if self.verdict is not None:
            return self.verdict
        checks: list[bool | None] = []
        if self.at_least_ratio is not None:
            checks.append(meets(self.ratio, at_least=self.at_least_ratio))
        if self.at_most_ratio is not None:
            ratio_ = self.ratio
            checks.append(None if ratio_ is None else ratio_ <= self.at_most_ratio)
        if self.below is not None or self.at_least is not None:
            checks.append(meets(self.value.median, at_least=self.at_least, below=self.below))
        if not checks or None in checks:
            return None
        return all(checks)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        """A figure back from a report document (for merging a partial run into the latest report)."""

        def summary(value: Any) -> Summary | None:
            return summarize(value["values"]) if value else None

        return cls(
            row=data["row"],
            name=data["figure"],
            unit=data["unit"],
            value=summary(data["value"]),
            baseline=summary(data["baseline"]),
            baseline_name=data.get("baseline_name"),
            target=data.get("target", "—"),
            note=data.get("note"),
            verdict=data.get("met"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "figure": self.name,
            "unit": self.unit,
            "value": self.value.to_dict() if self.value else None,
            "baseline_name": self.baseline_name,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class RowResult:
    """What one row module hands back: its figures, raw details, notes and whether it ran at all."""

    row: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def measured(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "title": self.title,
            "measured": self.measured,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "figures": [f.to_dict() for f in self.figures],
            "notes": list(self.notes),
            "details": self.details,
        }


def row_from_dict(data: Mapping[str, Any]) -> RowResult:
    return RowResult(
        row=data["row"],
        title=data["title"],
        figures=[Figure.from_dict(f) for f in data.get("figures", [])],
        details=dict(data.get("details") or {}),
        notes=list(data.get("notes") or []),
        error=data.get("error"),
        seconds=float(data.get("seconds") or 0.0),
    )


def _clean(value: Any) -> Any:
    """JSON has no NaN: turn NaN/inf into null so the file stays valid for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def build_document(
    *,
    rows: Sequence[RowResult],
    machine: Mapping[str, Any],
    versions: Mapping[str, Any],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    document: dict[str, Any] = _clean(
        {
            "run": dict(run),
            "machine": dict(machine),
            "versions": dict(versions),
            "rows": [r.to_dict() for r in rows],
        }
    )
    return document


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _spread(summary: Summary | None, unit: str) -> str:
    if summary is None:
        return "not measured"
    if summary.n == 1:
        return fmt(summary.median, unit)
    return f"{fmt(summary.median, unit)} (p25–p75 {fmt(summary.p25)}–{fmt(summary.p75)}, n={summary.n})"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "—"}[value]


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# The profiles taken where a target was missed and what each fix changed, measured back to back: kept
# by hand (each entry names its command and figures) and appended to every Markdown report.
FINDINGS = Path(__file__).with_name("findings.md")


def measured_in(run: Mapping[str, Any], row: str) -> str | None:
    """The start of the run that measured `row`, as a report's run section records it."""
    sources = run.get("row_runs") or {}
    if row in sources:
        return str(sources[row])
    if row in run.get("merged_rows", []):
        return run.get("merged_from")
    return run.get("started_at")


def _rows_phrase(rows: Sequence[str]) -> str:
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(rows)}"


def _provenance(run: Mapping[str, Any]) -> str:
    """Which rows this run measured and which run measured each of the others."""
    by_run: dict[str, list[str]] = {}
    for row in run.get("merged_rows", []):
        by_run.setdefault(str(measured_in(run, row)), []).append(row)
    others = "; ".join(
        f"{_rows_phrase(rows)} {'comes' if len(rows) == 1 else 'come'} from the run of {started}"
        for started, rows in by_run.items()
    )
    measured = list(run.get("rows", []))
    verb = "was" if len(measured) == 1 else "were"
    return (
        f"{_rows_phrase(measured).capitalize()} {verb} measured in this run; {others} "
        "(the code may have changed since: bench/findings.md says how), "
        "merged with `--merge`."
    )


def render_markdown(
    document: Mapping[str, Any], rows: Sequence[RowResult], findings: str | None = None
) -> str:
    run = document["run"]
    machine = document["machine"]
    versions = document["versions"]
    lines = [
        "# docroute benchmark — latest figures",
        "",
        f"Run {run.get('started_at', '?')} ({run.get('mode', 'full')} mode, {run.get('seconds', 0):.0f} s); "
        f"reproduce with `{run.get('command', 'make bench')}`.",
        "",
        *([_provenance(run), ""] if run.get("merged_from") else []),
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} CPUs, "
        f"{fmt(machine.get('memory_gb'), 'GB')} RAM, {machine.get('os', '?')}.",
        "",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        "",
        "| row | figure | value (median, spread) | baseline (same run) | ratio | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.measured:
            lines.append(f"| {row.row} | {_esc(row.title)} | not measured | — | — | — | — |")
            continue
        for figure in row.figures:
            baseline = (
                f"{_esc(figure.baseline_name or '')}: {fmt(figure.baseline.median, figure.unit)}"
                if figure.baseline
                else "—"
            )
            lines.append(
                f"| {figure.row} | {_esc(figure.name)} | {_spread(figure.value, figure.unit)} | {baseline} | "
                f"{fmt(figure.ratio)} | {_esc(figure.target)} | {_met(figure.met)} |"
            )
    lines.append("")
    for row in rows:
        lines.append(f"## Row {row.row}: {row.title}")
        lines.append("")
        if not row.measured:
            lines.append(f"Not measured: {row.error}")
            lines.append("")
        for note in row.notes:
            lines.append(f"- {note}")
        if row.notes:
            lines.append("")
    if findings:
        lines.append("## Profiles and fixes: before → after")
        lines.append("")
        lines.append(findings.strip())
        lines.append("")
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(
    directory: Path, stamp: str, document: Mapping[str, Any], rows: Iterable[RowResult]
) -> list[Path]:
    """Writes <stamp>.json/.md and latest.json/.md; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    text_json = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    findings = FINDINGS.read_text(encoding="utf-8") if FINDINGS.is_file() else None
    text_md = render_markdown(document, rows, findings)
    written = []
    for name, text in (
        (f"bench-{stamp}.json", text_json),
        (f"bench-{stamp}.md", text_md),
        ("latest.json", text_json),
        ("latest.md", text_md),
    ):
        path = directory / name
        _write_atomically(path, text)
        written.append(path)
    return written
