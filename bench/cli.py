"""`python -m bench [--rows 1,3] [--quick]`: runs the chosen rows, then writes the reports."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import environment
from bench.broker import delete_queues, purge_queues, system_queues, unit_queues_in
from bench.context import Context
from bench.harness import ROOT, Infra, Launcher, progress, workspace
from bench.report import RowResult, build_document, measured_in, row_from_dict, write_reports

RESULTS = ROOT / "bench" / "results"
ALL_ROWS = ("1", "2", "3", "4", "5", "6", "7")


def _runners() -> dict[str, tuple[str, Callable[[Context], RowResult]]]:
    # Imported lazily: `--help` and the report tests must not pull in every service's dependencies.
    from bench import (
        row1_intake,
        row2_e2e,
        row3_polling,
        row4_archive,
        row5_scale,
        row6_memory,
        row7_replicas,
    )

    return {
        "1": (row1_intake.TITLE, row1_intake.run),
        "2": (row2_e2e.TITLE, row2_e2e.run),
        "3": (row3_polling.TITLE, row3_polling.run),
        "4": (row4_archive.TITLE, row4_archive.run),
        "5": (row5_scale.TITLE, row5_scale.run),
        "6": (row6_memory.TITLE, row6_memory.run),
        "7": (row7_replicas.TITLE, row7_replicas.run),
    }


def parse_rows(text: str) -> list[str]:
    rows = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [r for r in rows if r not in ALL_ROWS]
    if unknown or not rows:
        raise argparse.ArgumentTypeError(f"rows must be a comma list of {','.join(ALL_ROWS)}, not {text!r}")
    return sorted(set(rows), key=ALL_ROWS.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rows", type=parse_rows, default=list(ALL_ROWS), help="e.g. 1,3 (default: all)")
    parser.add_argument("--quick", action="store_true", help="short durations and one repeat: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory (default bench/results)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other rows of the previous latest.json in the new latest report (partial re-run)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory with process logs")
    args = parser.parse_args(argv)
    rows: list[str] = args.rows
    if "6" in rows and "1" not in rows:
        # Row 6 is the memory measured while row 1 runs.
        rows = sorted({*rows, "1"}, key=ALL_ROWS.index)

    started = datetime.now(UTC)
    t0 = time.monotonic()
    progress(f"docroute bench: rows {','.join(rows)}{' (quick)' if args.quick else ''}")
    machine, versions = environment.machine(), environment.versions()
    progress(f"machine: {machine['cpu_count']} x {machine['cpu_model']}, {machine['memory_gb']} GB")
    runners = _runners()
    results: list[RowResult] = []
    failed = False
    with workspace(keep=args.keep) as workdir:
        infra = Infra(workdir)
        launcher = Launcher(workdir)
        ctx = Context(workdir=workdir, infra=infra, launcher=launcher, quick=args.quick)
        try:
            for row in rows:
                title, run = runners[row]
                progress(f"row {row}: {title}")
                begun = time.monotonic()
                try:
                    result = run(ctx)
                except Exception as exc:  # noqa: BLE001 - one broken row must not lose the others' figures
                    failed = True
                    progress(f"row {row}: NOT MEASURED: {type(exc).__name__}: {exc}")
                    traceback.print_exc(file=sys.stderr)
                    result = RowResult(row, title, error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                finally:
                    launcher.stop_all()
                    with contextlib.suppress(Exception):
                        infra.release()
                    if infra.has_vhost:
                        # What this row's producers left for services it did not run must not meet the
                        # next row's workers in the shared vhost.
                        with contextlib.suppress(Exception):
                            purge_queues(infra.vhost(), system_queues())
                        # Every quorum queue holds open files; the broker's limit here is 1,024, and rows 2,
                        # 3 and 5 declare some 500 unit queues and DLQs between them.
                        with contextlib.suppress(Exception):
                            delete_queues(infra.vhost(), unit_queues_in(infra.vhost_name))
                result.seconds = time.monotonic() - begun
                progress(f"row {row}: done in {result.seconds:.0f} s")
                results.append(result)
        finally:
            launcher.stop_all()
            with contextlib.suppress(Exception):
                infra.close()
        if args.keep:
            progress(f"process logs kept in {workdir}")

    command = (
        "make bench"
        if rows == list(ALL_ROWS) and not args.quick
        else shlex.join(
            [
                ".venv/bin/python",
                "-m",
                "bench",
                *(["--rows", ",".join(rows)] if rows != list(ALL_ROWS) else []),
                *(["--quick"] if args.quick else []),
            ]
        )
    )
    run_info = {
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - t0,
        "mode": "quick" if args.quick else "full",
        "rows": rows,
        "command": command,
    }
    if args.merge and (args.out / "latest.json").is_file():
        previous = json.loads((args.out / "latest.json").read_text(encoding="utf-8"))
        fresh = {r.row for r in results}
        kept = [row_from_dict(r) for r in previous.get("rows", []) if r["row"] not in fresh]
        results = sorted([*results, *kept], key=lambda r: ALL_ROWS.index(r.row))
        run_info["merged_from"] = previous.get("run", {}).get("started_at")
        run_info["merged_rows"] = [r.row for r in kept]
        # Where each kept row was measured: a row kept through several merges keeps its own run.
        run_info["row_runs"] = {r.row: measured_in(previous.get("run", {}), r.row) for r in kept}
        run_info["command"] = "make bench"
        progress(f"merged rows {','.join(r.row for r in kept)} from the run of {run_info['merged_from']}")
    document = build_document(rows=results, machine=machine, versions=versions, run=run_info)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    paths = write_reports(args.out, stamp, document, results)
    progress(
        "reports: " + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths)
    )
    for result in results:
        for figure in result.figures:
            met = {True: "met", False: "MISSED", None: ""}[figure.met]
            value = f"{figure.value.median:.2f}" if figure.value else "—"
            print(f"row {figure.row}: {figure.name}: {value} {figure.unit} {met}".rstrip())
        if not result.measured:
            print(f"row {result.row}: not measured: {result.error}")
    return 1 if failed else 0
