"""A short schemathesis run (`--checks all`, every role family) against the three running services.

The long run is `make fuzz`; this one keeps `make test` honest in about two minutes. Findings are never
waived here: a failing check is a bug in a service or in its OpenAPI document.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fuzz.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docroute_fuzz", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docroute_fuzz"] = module
    spec.loader.exec_module(module)
    return module


fuzz = load_tool()

SAMPLE_OUTPUT = """
=================================== FAILURES ===================================
______________________________ GET /v1/directives ______________________________
1. Test Case ID: BR8DkZ

- ST202 Schema-valid request rejected

[422] Unprocessable Content:
________________________________ Stateful tests ________________________________
1. Test Case ID: KPbj32

- ST101 Server error
- ST301 Response violates schema

[500] Internal Server Error:
=================================== WARNINGS ===================================
______ not a failure ______
- ST999 ignored
"""


def test_only_contract_breaks_fail_the_run_and_the_other_findings_are_listed():
    server_error = fuzz.Finding("routing", "clerk", "GET /v1/units", "ST101 Server error", "500")
    refused = fuzz.Finding(
        "intake", "clerk", "GET /v1/directives", "ST202 Schema-valid request rejected", "422"
    )
    assert server_error.breaks_contract and not refused.breaks_contract
    lines = fuzz.summary(
        [
            fuzz.RunResult("routing", "clerk", 1, Path("x"), [server_error]),
            fuzz.RunResult("intake", "clerk", 1, Path("y"), [refused]),
        ]
    )
    assert lines[0].startswith("FAIL routing clerk") and lines[1].startswith("NOTE intake clerk")
    assert "1 contract breaks, 1 other findings" in lines[-1]
    assert not fuzz.failed(fuzz.RunResult("intake", "clerk", 1, Path("y"), [refused]))


def test_findings_are_read_per_operation_check_and_status():
    found = [str(f) for f in fuzz.parse_findings("intake", "clerk", SAMPLE_OUTPUT)]
    assert found == [
        "intake clerk: GET /v1/directives: ST202 Schema-valid request rejected [422]",
        "intake clerk: Stateful tests: ST101 Server error [500]",
        "intake clerk: Stateful tests: ST301 Response violates schema [500]",
    ]


@pytest.mark.fuzz
@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing_with_any_role(tmp_path):
    results = fuzz.fuzz_all(tmp_path / "reports", seconds=3, max_examples=5, data_dir=tmp_path / "var")
    assert {(r.service, r.role) for r in results} == {
        (s, r) for s in fuzz.SERVICES for r in fuzz.ROLE_FAMILIES
    }
    assert all(r.test_cases > 0 for r in results), [(r.service, r.role, r.exit_code) for r in results]
    lines = fuzz.summary(results)
    broken = [line for line in lines if line.startswith(("FAIL", "ERROR"))]
    assert broken == [], "\n".join([*lines, f"details with curl reproductions: {tmp_path / 'reports'}"])
    assert not any(fuzz.failed(r) for r in results)
