"""The fault run's verdict: whole only with nothing lost, duplicated, dead-lettered, manual or skipped."""

from __future__ import annotations

from chaos.client import Outcome, Submission
from chaos.reconcile import Findings
from chaos.report import table, verdict
from chaos.run import Row, clients_saw


def _row(**changes: object) -> Row:
    row = Row(fault="broker restart", what="RabbitMQ node stopped and started", sent=10, accepted=10)
    row.clients_saw, row.recover_seconds = "201×10; slowest 201 after 0.3 s; 0 gave up", 12.0
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def test_a_clean_run_is_whole() -> None:
    assert verdict([_row()], Findings(accepted=10, stored=10)) == []


def test_every_kind_of_damage_makes_the_run_not_whole() -> None:
    for damage in (
        {"lost": 1},
        {"duplicated": 2},
        {"dead_lettered": 21},
        {"operator": ["`docroute dlq replay routing.intake.directive_registered` (21 message(s))"]},
        {"status": "not run"},
        {"recover_seconds": None},
    ):
        assert verdict([_row(**damage)], Findings()), damage
    assert verdict([_row()], None) == ["no final reconciliation"]
    assert verdict([_row()], Findings(dead_lettered={"archive.intake.directive_registered.dlq": 3}))
    assert verdict([_row()], Findings(other=["audit chain does not verify"]))


def test_the_table_shows_what_clients_saw_and_the_operator_step() -> None:
    text = table([_row(copies=4), _row(fault="PostgreSQL down", operator=["restarted `docroute up`"])])
    assert "| broker restart | POST: 201×10; slowest 201 after 0.3 s; 0 gave up; " in text
    assert "| 12 s | 0 | 0 (+4 re-sent" in text
    assert "restarted `docroute up`" in text


def test_clients_saw_counts_every_answer_and_the_slowest_success() -> None:
    sub = Submission(serial=1, sample=0, metadata={}, files=())
    ok = Outcome(submission=sub, started=0.0, finished=14.2, directive_id="d")
    ok.seen.update({"503": 3, "201": 1})
    failed = Outcome(submission=sub, started=0.0, finished=240.0)
    failed.seen.update({"connection error": 5})
    assert (
        clients_saw([ok, failed]) == "connection error×5, 503×3, 201×1; slowest 201 after 14.2 s; 1 gave up"
    )
