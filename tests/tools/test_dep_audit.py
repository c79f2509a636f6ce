"""The dependency audit says NOT CHECKED, never "no known vulnerabilities", for what it could not check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "dep_audit.py"


@pytest.fixture(scope="module")
def dep_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dep_audit", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dep_audit"] = module
    spec.loader.exec_module(module)
    return module


CLEAN = {"name": "flask", "version": "3.1.0", "vulns": []}
BAD = {
    "name": "requests",
    "version": "2.19.0",
    "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}],
}
SKIPPED = {
    "name": "pika",
    "skip_reason": "Dependency not found on PyPI and could not be audited: pika (1.3.2)",
}


def test_everything_checked_and_clean_is_the_only_no_known_vulnerabilities(dep_audit):
    summary = dep_audit.summarise({"dependencies": [CLEAN]})
    assert summary.lines() == ["all 1 checked packages: no known vulnerabilities"]
    assert summary.exit_code(allow_unchecked=False) == 0


def test_skipped_packages_are_named_not_checked(dep_audit):
    summary = dep_audit.summarise({"dependencies": [SKIPPED]})
    text = "\n".join(summary.lines())
    assert "NOT CHECKED: 1 of 1 packages" in text and "pika" in text and "not found on PyPI" in text
    assert "no known vulnerabilities" not in text
    assert summary.exit_code(allow_unchecked=False) == 3
    assert summary.exit_code(allow_unchecked=True) == 0


def test_a_partial_audit_says_what_it_checked_and_what_not(dep_audit):
    text = "\n".join(dep_audit.summarise({"dependencies": [CLEAN, SKIPPED]}).lines())
    assert "NOT CHECKED: 1 of 2 packages" in text
    assert "the 1 checked packages: no known vulnerabilities" in text


def test_a_vulnerability_fails_even_when_unchecked_is_allowed(dep_audit):
    summary = dep_audit.summarise({"dependencies": [BAD, SKIPPED]})
    assert summary.lines()[0] == "VULNERABLE requests==2.19.0: PYSEC-2018-28"
    assert summary.exit_code(allow_unchecked=True) == 1


def test_an_unreachable_vulnerability_service_is_not_checked(dep_audit, tmp_path, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("flask==3.1.0\n", encoding="utf-8")
    # A closed local port stands in for a database behind a firewall; nothing leaves the machine.
    code = dep_audit.main(
        ["-r", str(requirements), "--timeout", "60", "--", "-s", "osv", "--osv-url", "http://127.0.0.1:1/"]
    )
    out = capsys.readouterr().out
    assert code == 3
    assert out.startswith("NOT CHECKED: the audit could not run:") and "Connection" in out
    assert "no known vulnerabilities" not in out.lower()
    assert (
        dep_audit.main(
            [
                "-r",
                str(requirements),
                "--allow-unchecked",
                "--",
                "-s",
                "osv",
                "--osv-url",
                "http://127.0.0.1:1/",
            ]
        )
        == 0
    )
