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
from chaos.scaleout import REPLICAS, SCALEOUT_FAULTS, SCALEOUT_OUTAGE, ClusterRun
from chaos.servers import ROOT

RESULTS = ROOT / "chaos" / "results"
SCENARIOS = ("all", "single", "scale-out")
RESULT_NAMES = {"single": "latest", "scale-out": "scale-out"}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM tears down like Ctrl-C: the run's context manager stops everything it started.
    raise KeyboardInterrupt


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="all",
        help="single: one node, one replica of each process; scale-out: a three-node cluster and two "
        "replicas of each (chaos.scaleout); all: one after the other (default)",
    )
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


def config_from(args: argparse.Namespace, scenario: str = "single") -> Config:
    known = SCALEOUT_FAULTS if scenario == "scale-out" else FAULTS
    if args.faults:
        wanted = [name.strip() for name in args.faults.split(",") if name.strip()]
        names = {f.name for f in known}
        faults = by_names([n for n in wanted if n in names], known)
    else:
        faults = [f for f in known if f.quick] if args.quick else list(known)
    directives = args.directives or (10 if args.quick else 24)
    if scenario == "scale-out":
        # A few hundred directives in all: more per fault, a node down (or paused) for SCALEOUT_OUTAGE.
        directives = args.directives or (20 if args.quick else 80)
    return Config(
        faults=faults,
        directives_per_fault=directives,
        rate=args.rate,
        outage=args.outage if scenario != "scale-out" else SCALEOUT_OUTAGE,
        backlog=args.backlog,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for scenario, faults in (("single", FAULTS), ("scale-out", SCALEOUT_FAULTS)):
            for fault in faults:
                print(f"{scenario:10s} {fault.name:32s} {'(quick) ' if fault.quick else ''}{fault.what}")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    command = (
        "make chaos"
        if argv is None and not sys.argv[1:]
        else shlex.join(["python", "-m", "chaos", *(argv if argv is not None else sys.argv[1:])])
    )
    scenarios = ["single", "scale-out"] if args.scenario == "all" else [args.scenario]
    status = 0
    for scenario in scenarios:
        config = config_from(args, scenario)
        if not config.faults:
            continue
        status = max(status, run_scenario(scenario, config, args.out, command))
    return status


def run_scenario(scenario: str, config: Config, out: Path, command: str) -> int:
    """One scenario's run, its table on stdout and in `out`; 1 when it is not whole."""
    from chaos import report

    started = datetime.now(UTC)
    t0 = time.monotonic()
    rows: list[Row] = []
    final: Findings | None = None
    interrupted = False
    extra: dict[str, object] = {}
    progress(f"{scenario} fault run: {', '.join(f.name for f in config.faults)}")
    try:
        with ClusterRun(config) if scenario == "scale-out" else Run(config) as run:
            for fault in config.faults:
                rows.append(run.run_fault(fault))
            progress("final reconciliation")
            final = run.final_check()
            if isinstance(run, ClusterRun):
                extra["relay_audit"] = run.relay_audit
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: everything the run started has been stopped")
    if scenario == "scale-out":
        shape = (
            f"a three-node RabbitMQ cluster and {REPLICAS} replicas of every API and worker, "
            f"{config.directives_per_fault} directives sent during each fault at {config.rate:g}/s, "
            f"a node stopped or paused for {config.outage:g} s."
        )
    else:
        shape = (
            f"{config.directives_per_fault} directives sent during each at {config.rate:g}/s, "
            f"outages of {config.outage:g} s with a backlog of {config.backlog}."
        )
    info = {
        "scenario": scenario,
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - t0,
        "command": command,
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
        "summary": f"{len(config.faults)} faults, {shape}" + (" Interrupted." if interrupted else ""),
        "interrupted": interrupted,
        **extra,
    }
    paths = report.write(out, rows, final, info, name=RESULT_NAMES[scenario])
    print(f"## {scenario}")
    print(report.table(rows), end="")
    reasons = report.verdict(rows, final)
    print("whole: 0 lost, 0 duplicated, 0 dead-lettered, no operator step" if not reasons else "NOT whole:")
    for reason in reasons:
        print(f"  - {reason}")
    progress(f"results: {', '.join(str(p) for p in paths)}")
    return 1 if reasons or interrupted else 0
