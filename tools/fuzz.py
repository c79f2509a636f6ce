"""API fuzzing: schemathesis (`--checks all`) against each service's own OpenAPI document, once per role.

`docroute run` serves the three services with the embedded defaults (SQLite, filesystem store, memory://)
on free ports, with the seed's units, rules and directives; tokens for every role family are signed with that
run's development secret. Each (service, role) run is bounded by `--seconds`, so the whole is bounded too.
The summary lists every failure as `service role: operation: check [status]`; the full schemathesis output
(with a curl line reproducing each failure) is kept under the report directory.

What fails the run is what breaks the contract integrators generate clients from: a server error or a
response the document does not describe (schemathesis's response checks, ST1xx: 5xx, an undocumented status
code or media type, a body that violates its schema). Every other check of `--checks all` runs too, and its
findings are listed as NOTE lines: a 422 for a schema-valid request (ST202) is how the APIs refuse what a
JSON schema cannot say (dates in order, the số và ký hiệu grammar, a YAML rule set, an edXML packet); a
schema-violating request the API takes (ST201) or a deactivated unit that is still readable (ST301) are
worth a look but are not contract breaks.

Exit status: 0 no contract break, 1 a contract break or an error was found, 2 the services did not start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = ("intake", "routing", "archive")
#: Every role family, with the claims a token of that family carries besides `sub` and `roles`.
ROLE_FAMILIES: dict[str, dict[str, str]] = {
    "submitter": {},
    "clerk": {},
    "unit": {"unit": "PVHTT.DONGXOAI"},
    "auditor": {},
    "admin": {},
}

_OPERATION = re.compile(r"^_{3,} (.+?) _{3,}$")
_CHECK = re.compile(r"^- (ST\d+ .+)$")
_STATUS = re.compile(r"^\[(\d{3})\] ")


@dataclass(frozen=True)
class Finding:
    """One failing check of one operation, as schemathesis reported it."""

    service: str
    role: str
    operation: str
    check: str
    status: str | None

    def __str__(self) -> str:
        status = f" [{self.status}]" if self.status else ""
        return f"{self.service} {self.role}: {self.operation}: {self.check}{status}"

    @property
    def breaks_contract(self) -> bool:
        """A server error or a response the OpenAPI document does not describe (schemathesis ST1xx)."""
        return self.check.startswith("ST1")


@dataclass
class RunResult:
    """What one schemathesis run against one service with one role's token found."""

    service: str
    role: str
    exit_code: int
    output: Path
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    test_cases: int = 0


def free_base_port(count: int = 3) -> int:
    """A base port with `count` free ports from it, and the one before it free too (the console's)."""
    for base in range(20100, 30000, 7):
        try:
            for port in range(base - 1, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no consecutive free ports")


@contextmanager
def embedded_services(data_dir: Path, base_port: int, *, timeout: float = 90.0) -> Iterator[dict[str, str]]:
    """Run `docroute run` on base_port.. until the block ends; yields each service's base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")}
    # A new data folder starts with the seed: sample units, rules and routed directives to fuzz against.
    env.update(DOCROUTE_DATA_DIR=str(data_dir))
    data_dir.mkdir(parents=True, exist_ok=True)
    urls = {name: f"http://127.0.0.1:{base_port + i}" for i, name in enumerate(SERVICES)}
    with (data_dir / "run.log").open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own entry point
            [str(BIN / "docroute"), "run", "--base-port", str(base_port)], env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + timeout
            for url in urls.values():
                while not _healthy(url):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"docroute run did not come up; see {data_dir / 'run.log'}")
                    time.sleep(0.2)
            yield urls
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:  # noqa: S310 - local http URL
            return bool(answer.status == 200)
    except OSError:
        return False


def role_tokens(data_dir: Path) -> dict[str, str]:
    """A token per role family, signed with the development secret `docroute run` uses in data_dir."""
    from shared.auth import issue_token
    from shared.settings import ensure_dev_secret

    secret = ensure_dev_secret(data_dir)
    return {
        role: issue_token(secret, sub=f"fuzz-{role}", roles=[role], ttl_seconds=3600, **claims)
        for role, claims in ROLE_FAMILIES.items()
    }


def run_schemathesis(
    service: str,
    role: str,
    url: str,
    token: str,
    report_dir: Path,
    *,
    seconds: float,
    max_examples: int,
    seed: int,
    workers: int,
) -> RunResult:
    """One bounded `schemathesis run --checks all` against `url`'s OpenAPI document with one token."""
    report_dir.mkdir(parents=True, exist_ok=True)
    output = report_dir / f"{service}-{role}.txt"
    report = report_dir / f"{service}-{role}.json"
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(max(1, round(seconds))),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    with output.open("w", encoding="utf-8") as out:
        done = subprocess.run(  # noqa: S603 - the venv's schemathesis
            command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=seconds * 3 + 120, check=False
        )
    result = RunResult(service, role, done.returncode, output)
    result.findings = parse_findings(service, role, output.read_text(encoding="utf-8", errors="replace"))
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    result.errors = [str(e.get("title")) for e in data.get("errors", [])]
    result.test_cases = int(data.get("test_cases", {}).get("generated", 0))
    return result


def parse_findings(service: str, role: str, text: str) -> list[Finding]:
    """The (operation, check, status) triples of schemathesis's FAILURES section."""
    findings: list[Finding] = []
    in_failures = False
    operation = ""
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("=") and "FAILURES" in line:
            in_failures = True
            continue
        if line.startswith("=") and in_failures:
            break
        if not in_failures:
            continue
        if heading := _OPERATION.match(line):
            operation = heading.group(1)
        elif check := _CHECK.match(line):
            pending.append(check.group(1))
        elif (status := _STATUS.match(line)) and pending:
            findings.extend(Finding(service, role, operation, c, status.group(1)) for c in pending)
            pending = []
    findings.extend(Finding(service, role, operation, c, None) for c in pending)
    return findings


def fuzz_all(
    report_dir: Path,
    *,
    services: Sequence[str] = SERVICES,
    roles: Sequence[str] = tuple(ROLE_FAMILIES),
    seconds: float = 15.0,
    max_examples: int = 25,
    seed: int = 20261204,
    workers: int = 1,
    data_dir: Path | None = None,
) -> list[RunResult]:
    """Start the services, then fuzz every (service, role) pair one after the other."""
    with tempfile.TemporaryDirectory(prefix="docroute-fuzz-") as tmp:
        state = data_dir or Path(tmp) / "var"
        with embedded_services(state, free_base_port()) as urls:
            tokens = role_tokens(state)
            results: list[RunResult] = []
            for service in services:
                for role in roles:
                    # A run whose time budget went on loading the schema (a busy machine) generated no test
                    # case and proves nothing: it runs once more with a budget five times as long.
                    for budget in (seconds, seconds * 5):
                        result = run_schemathesis(
                            service,
                            role,
                            urls[service],
                            tokens[role],
                            report_dir,
                            seconds=budget,
                            max_examples=max_examples,
                            seed=seed,
                            workers=workers,
                        )
                        if result.test_cases > 0:
                            break
                    results.append(result)
            return results


def summary(results: Sequence[RunResult]) -> list[str]:
    """One line per distinct finding and error, then a count line."""
    lines: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for result in results:
        for finding in result.findings:
            if str(finding) not in seen:
                seen.add(str(finding))
                (lines if finding.breaks_contract else notes).append(
                    f"{'FAIL' if finding.breaks_contract else 'NOTE'} {finding}"
                )
        lines.extend(f"ERROR {result.service} {result.role}: {error}" for error in result.errors)
    cases = sum(r.test_cases for r in results)
    failing = sum(1 for r in results if failed(r))
    lines.extend(notes)
    lines.append(
        f"{len(results)} runs, {cases} test cases, {len(seen) - len(notes)} contract breaks, "
        f"{len(notes)} other findings, {failing} runs failing"
    )
    return lines


def failed(result: RunResult) -> bool:
    """A contract break, an error, or schemathesis ending other than with findings (exit 1)."""
    return (
        any(f.breaks_contract for f in result.findings)
        or bool(result.errors)
        or result.exit_code not in (0, 1)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="time budget per (service, role) run")
    parser.add_argument("--max-examples", type=int, default=25, help="test cases per operation and phase")
    parser.add_argument("--seed", type=int, default=20261204)
    # One worker: with two, CPython 3.11.7 trips over its own AST recursion counter inside hypothesis.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--service", action="append", choices=SERVICES, help="only these (repeatable)")
    parser.add_argument("--role", action="append", choices=tuple(ROLE_FAMILIES), help="only these")
    parser.add_argument("--report-dir", type=Path, default=REPO / "var" / "fuzz")
    args = parser.parse_args(argv)
    try:
        results = fuzz_all(
            args.report_dir,
            services=args.service or SERVICES,
            roles=args.role or tuple(ROLE_FAMILIES),
            seconds=args.seconds,
            max_examples=args.max_examples,
            seed=args.seed,
            workers=args.workers,
        )
    except RuntimeError as exc:
        print(f"fuzz: {exc}", file=sys.stderr)
        return 2
    for line in summary(results):
        print(line)
    print(f"details (with curl reproductions): {args.report_dir}/<service>-<role>.txt")
    return 1 if any(failed(r) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
