"""Dependency audit of uv.lock with pip-audit that never reports "no known vulnerabilities" for what it
could not check.

pip-audit answers "No known vulnerabilities found" even when every package was skipped because the
vulnerability service did not know it (a PyPI mirror without advisories answers 404 per version) or could
not be reached. This wrapper reads pip-audit's JSON report and says, per package, whether it was checked.

Exit status: 0 every pinned package was checked and none has a known vulnerability; 1 a known vulnerability
was found (whatever else happened); 3 some or all packages were NOT checked (the service is unreachable or
does not know them) and none checked is vulnerable. `--allow-unchecked` turns 3 into 0 for offline CI,
still printing NOT CHECKED and why.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VULNERABLE, UNCHECKED = 1, 3


@dataclass
class Summary:
    """What one audit established: packages checked, vulnerabilities found, packages left unchecked."""

    checked: list[str] = field(default_factory=list)
    vulnerable: dict[str, list[str]] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)
    failure: str | None = None  # the audit as a whole could not run

    def exit_code(self, *, allow_unchecked: bool) -> int:
        if self.vulnerable:
            return VULNERABLE
        if (self.failure or self.unchecked) and not allow_unchecked:
            return UNCHECKED
        return 0

    def lines(self) -> list[str]:
        out = [f"VULNERABLE {name}: {', '.join(ids)}" for name, ids in sorted(self.vulnerable.items())]
        if self.failure is not None:
            out.append(f"NOT CHECKED: the audit could not run: {self.failure}")
            return out
        if self.unchecked:
            reasons = sorted(set(self.unchecked.values()))
            out.append(
                f"NOT CHECKED: {len(self.unchecked)} of {len(self.unchecked) + len(self.checked)} packages "
                f"could not be audited ({reasons[0]}{' …' if len(reasons) > 1 else ''}): "
                + ", ".join(sorted(self.unchecked))
            )
        if self.checked and not self.vulnerable:
            scope = "all" if not self.unchecked else "the"
            out.append(f"{scope} {len(self.checked)} checked packages: no known vulnerabilities")
        if not self.checked and not self.unchecked:
            out.append("NOT CHECKED: the report lists no packages")
        return out


def summarise(report: dict[str, Any]) -> Summary:
    """Classify pip-audit's JSON report (`-f json`) package by package."""
    summary = Summary()
    for dep in report.get("dependencies", []):
        name = f"{dep.get('name')}=={dep.get('version', '?')}"
        if "skip_reason" in dep:
            summary.unchecked[str(dep.get("name"))] = _reason(str(dep["skip_reason"]))
            continue
        summary.checked.append(name)
        ids = [str(v.get("id")) for v in dep.get("vulns", [])]
        if ids:
            summary.vulnerable[name] = ids
    return summary


def _reason(skip: str) -> str:
    # pip-audit words it per package ("Dependency not found on PyPI and could not be audited: x (1.0)").
    return skip.split(":", 1)[0].strip()


def locked_requirements(target: Path, uv: str) -> None:
    """Every third-party package pinned in uv.lock (all groups), as a requirements file."""
    subprocess.run(  # noqa: S603 - fixed arguments; `uv` is the Makefile's own uv
        [
            uv,
            "export",
            "--frozen",
            "--all-packages",
            "--all-groups",
            "--no-emit-workspace",
            "--no-hashes",
            "-o",
            str(target),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )


def run_audit(requirements: Path, extra: list[str], timeout: float) -> Summary:
    """Run pip-audit on a pinned requirements file and summarise what it really checked."""
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            str(requirements),
            "--no-deps",  # pinned by uv.lock already: nothing to resolve, no index needed
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
            "-o",
            str(report_path),
            *extra,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)  # noqa: S603
        except subprocess.TimeoutExpired:
            return Summary(failure=f"pip-audit did not finish within {timeout:.0f} s")
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            last = [line for line in (done.stderr or "").splitlines() if line.strip()]
            return Summary(failure=(last[-1] if last else f"pip-audit exited {done.returncode}")[:300])
    return summarise(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-r", "--requirements", type=Path, help="pinned requirements (default: from uv.lock)")
    parser.add_argument(
        "--allow-unchecked", action="store_true", help="exit 0 when nothing vulnerable was found"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--uv", default="uv", help="the uv executable that exports uv.lock")
    parser.add_argument("pip_audit_args", nargs="*", help="passed to pip-audit after --, e.g. -s osv")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        requirements = args.requirements
        if requirements is None:
            requirements = Path(tmp) / "requirements.txt"
            locked_requirements(requirements, args.uv)
        summary = run_audit(requirements, args.pip_audit_args, args.timeout)
    for line in summary.lines():
        print(line)
    return summary.exit_code(allow_unchecked=args.allow_unchecked)


if __name__ == "__main__":
    sys.exit(main())
