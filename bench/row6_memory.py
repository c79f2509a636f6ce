"""Row 6: peak RSS of each service's process group (gunicorn master + workers, summed, sampled by psutil)."""

from __future__ import annotations

from bench.context import Context
from bench.report import Figure, RowResult
from bench.stats import summarize

TITLE = "memory: peak RSS per service process group"
LIMIT_MB = 300.0


def run(ctx: Context) -> RowResult:
    row = RowResult("6", TITLE)
    if not ctx.memory:
        raise RuntimeError("no process was sampled (row 1 did not run or failed)")
    for label, (mb, during) in sorted(ctx.memory.items()):
        is_baseline = label.startswith("baseline")
        row.figures.append(
            Figure(
                row="6",
                name=f"peak RSS, {label}, during row {during}",
                unit="MB",
                value=summarize([mb]),
                target="—" if is_baseline else f"< {LIMIT_MB:.0f} MB",
                below=None if is_baseline else LIMIT_MB,
            )
        )
    row.details = {
        "peak_rss_mb": {label: {"mb": mb, "row": during} for label, (mb, during) in ctx.memory.items()}
    }
    row.notes.append(
        "psutil samples every 0.25 s the RSS of the process and all its children (gunicorn master + 2 "
        "workers; a worker module is one process) and sums them; the figure is the highest sum seen. "
        "Row 1 runs only intake, so routing and archive are sampled under their own rows' load (2 and 3; 4)."
    )
    return row
