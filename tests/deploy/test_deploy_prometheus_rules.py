"""The example Prometheus rules: well-formed, covering the alerts the operations guide promises."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from deploy_support import REPO

RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
# What the issue asks to alert on, by the metric each alert must read.
REQUIRED_METRICS = {
    "docroute_outbox_backlog",
    "docroute_outbox_oldest_age_seconds",
    "rabbitmq_queue_messages",
    "docroute_tasks_overdue",
    "docroute_archive_fixity_failed_total",
    "docroute_archive_audit_chain_ok",
}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_is_a_complete_alert() -> None:
    rules = _rules()
    assert rules
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule.get("alert")
        assert re.fullmatch(r"Docroute[A-Z][A-Za-z]+", rule["alert"])
        assert DURATION.fullmatch(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names are unique"


def test_expressions_are_balanced_and_cover_the_required_metrics() -> None:
    used: set[str] = set()
    for rule in _rules():
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), rule["alert"]
        assert expr.count("{") == expr.count("}"), rule["alert"]
        used.update(re.findall(r"\b(?:docroute|rabbitmq)_[a-z_]+\b", expr))
    assert used >= REQUIRED_METRICS, f"missing: {sorted(REQUIRED_METRICS - used)}"


def test_every_docroute_metric_an_alert_reads_is_exported_by_the_code() -> None:
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("shared", "services")
        for path in (REPO / folder).rglob("*.py")
    )
    for rule in _rules():
        for metric in re.findall(r"\bdocroute_[a-z_]+\b", rule["expr"]):
            assert f'"{metric}"' in sources, f"{rule['alert']} reads {metric}, which no code exports"


def test_dead_letter_alert_matches_only_dlq_queues() -> None:
    (rule,) = [r for r in _rules() if "rabbitmq_queue_messages" in r["expr"]]
    (pattern,) = re.findall(r'queue=~"([^"]+)"', rule["expr"])
    # PromQL regexes are anchored; the YAML string holds one escaped backslash.
    regex = re.compile(pattern.replace("\\\\", "\\"))
    assert regex.fullmatch("routing.intake.directive_registered.dlq")
    assert regex.fullmatch("routing.tasks.PVHTT.DONGXOAI.dlq")
    assert not regex.fullmatch("routing.intake.directive_registered")
    assert not regex.fullmatch("archive.dlqueue")


def test_runbook_references_point_at_existing_sections() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in guide.splitlines() if line.startswith("#")}
    for rule in _rules():
        for section in re.findall(r'operations\.md, "([^"]+)"', rule["annotations"]["description"]):
            assert section in headings, f"{rule['alert']} points at a missing section {section!r}"


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool is not installed (Debian: apt-get install prometheus); YAML checks above still ran"
        )
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
