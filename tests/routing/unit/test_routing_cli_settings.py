"""The offline `rules check` command and the routing settings."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from routing.cli import rules
from routing.settings import Settings, packaged_holidays
from shared.settings import SettingsError

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def test_check_accepts_the_sample_rules():
    result = CliRunner().invoke(
        rules, ["check", str(SAMPLES / "rules.yaml"), "--units", str(SAMPLES / "units.yaml")]
    )
    assert result.exit_code == 0
    assert "3 rule(s) valid" in result.output


def test_check_lists_each_problem_with_rule_and_field_and_fails(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - id: r1\n    match: {subject: {regex: '('}}\n"
        "    tasks: [{to: {groups: [khong-co]}, role: chu_tri}]\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(rules, ["check", str(bad), "--units", str(SAMPLES / "units.yaml")])
    assert result.exit_code == 1
    assert "r1.match.subject.regex: bad regular expression" in result.output
    assert "r1.tasks[0].to.groups: unknown group 'khong-co'" in result.output


def test_check_without_units_skips_name_checks(tmp_path):
    doc = tmp_path / "r.yaml"
    doc.write_text(
        "rules:\n  - id: r1\n    match: {subject: x}\n    tasks: [{to: {units: [ANY]}, role: de_biet}]\n"
    )
    assert CliRunner().invoke(rules, ["check", str(doc)]).exit_code == 0


def test_settings_defaults(tmp_path):
    s = Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": "x"})
    assert s.database_url == f"sqlite:///{tmp_path / 'routing.db'}"
    assert s.holidays_file == packaged_holidays() and s.holidays_file.exists()
    assert (s.task_lease_seconds, s.overdue_scan_seconds, s.rules_file) == (300, 60.0, None)


def test_settings_refuse_bad_values_naming_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="DOCROUTE_TASK_LEASE_SECONDS"):
        Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_TASK_LEASE_SECONDS": "soon"})
