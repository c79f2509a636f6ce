"""`python -m chaos [--quick] [--faults ...]`: one fault run, its table on stdout and in chaos/results/;
exits non-zero on any loss, duplicate, dead letter, manual step or fault not run."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from chaos.faults import FAULTS, by_names
from chaos.reconcile import Findings
from chaos.run import Config, Row, Run, progress
from chaos.servers import ROOT

RESULTS = ROOT / "chaos" / "results"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM tears down like Ctrl-C: the run's context manager stops everything it started.
    raise KeyboardInterrupt


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer directives, only the faults that take seconds")
    p.add_argument("--faults", help="comma list of fault names (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the faults and exit")
    p.add_argument("--directives", type=int, help="directives sent during each fault (default 24, quick 10)")
    p.add_argument("--rate", type=float, default=3.0, help="directives per second during a fault")
    p.add_argument("--outage", type=float, default=60.0, help="seconds PostgreSQL / S3 stay unreachable")
    p.add_argument("--backlog", type=int, default=25, help="messages waiting when a dependency goes down")
    p.add_argument("--out", type=Path, default=RESULTS, help="where latest.{md,json} go")
    p.add_argument("--keep", action="store_true", help="keep the servers' data and the process logs")
    return p


def config_from(args: argparse.Namespace) -> Config:
    if args.faults:
        faults = by_names([name.strip() for name in args.faults.split(",") if name.strip()])
    else:
        faults = [f for f in FAULTS if f.quick] if args.quick else list(FAULTS)
    directives = args.directives or (10 if args.quick else 24)
    return Config(
        faults=faults,
        directives_per_fault=directives,
        rate=args.rate,
        outage=args.outage,
        backlog=args.backlog,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    from chaos import report

    args = parser().parse_args(argv)
    if args.list:
        for fault in FAULTS:
            print(f"{fault.name:28s} {'(quick) ' if fault.quick else ''}{fault.what}")
        return 0
    config = config_from(args)
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    rows: list[Row] = []
    final: Findings | None = None
    interrupted = False
    progress(f"fault run: {', '.join(f.name for f in config.faults)}")
    try:
        with Run(config) as run:
            for fault in config.faults:
                rows.append(run.run_fault(fault))
            progress("final reconciliation")
            final = run.final_check()
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: everything the run started has been stopped")
    command = (
        "make chaos"
        if argv is None and not sys.argv[1:]
        else shlex.join(["python", "-m", "chaos", *(argv if argv is not None else sys.argv[1:])])
    )
    info = {
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - t0,
        "command": command,
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
        "summary": (
            f"{len(config.faults)} faults, {config.directives_per_fault} directives sent during each at "
            f"{config.rate:g}/s, outages of {config.outage:g} s with a backlog of {config.backlog}."
            + (" Interrupted." if interrupted else "")
        ),
        "interrupted": interrupted,
    }
    paths = report.write(args.out, rows, final, info)
    print(report.table(rows), end="")
    reasons = report.verdict(rows, final)
    print("whole: 0 lost, 0 duplicated, 0 dead-lettered, no operator step" if not reasons else "NOT whole:")
    for reason in reasons:
        print(f"  - {reason}")
    progress(f"results: {', '.join(str(p) for p in paths)}")
    return 1 if reasons or interrupted else 0
