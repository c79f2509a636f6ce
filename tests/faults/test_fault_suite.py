"""The fault suite in `make test`: the faults that take seconds, then issue 15's reproductions — PostgreSQL
down 60 s and the object store unreachable 60 s, each with a backlog of at least 20 messages — all end with
every directive stored once, routed and archived, nothing dead-lettered and no operator step."""

from __future__ import annotations

import pytest

from chaos.faults import FAULTS, Fault, by_names
from chaos.run import Row, Run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# The short version (under two minutes here): a web worker and a service worker killed mid-flow, and every
# broker connection cut mid-publish. `make chaos` kills every process kind and restarts the broker too.
QUICK = ("kill -9 intake API worker", "kill -9 routing worker", "broker connection cut")


def _judge(rows: list[Row], run: Run) -> None:
    report = "\n".join(
        f"{r.fault}: status {r.status}, recovered {r.recover_seconds}, lost {r.lost}, "
        f"duplicated {r.duplicated}, dead-lettered {r.dead_lettered}, operator {r.operator}, "
        f"clients saw {r.clients_saw}; "
        f"problems {r.problems}; notes {r.notes}"
        for r in rows
    )
    for row in rows:
        assert row.status == "ok", report
        assert row.accepted == row.sent > 0, report
        assert row.recover_seconds is not None, report
        assert (row.lost, row.duplicated, row.dead_lettered) == (0, 0, 0), report
        assert row.operator == [], report
    final = run.final_check()
    assert final.clean, final.as_dict()
    assert final.stored == final.accepted == len(run.expected.accepted)


def _run(run: Run, faults: list[Fault]) -> list[Row]:
    return [run.run_fault(fault) for fault in faults]


def test_quick_faults_lose_duplicate_and_dead_letter_nothing(fault_run: Run) -> None:
    assert set(QUICK) <= {f.name for f in FAULTS if f.quick}
    _judge(_run(fault_run, by_names(list(QUICK))), fault_run)


def test_postgresql_down_60s_with_a_backlog_heals_by_itself(fault_run: Run) -> None:
    rows = _run(fault_run, by_names(["PostgreSQL down"]))
    assert fault_run.outage >= 60 and fault_run.backlog >= 20
    assert any("backlog of 20" in note for note in rows[0].notes), rows[0].notes
    _judge(rows, fault_run)


def test_object_store_unreachable_60s_with_a_backlog_heals_by_itself(fault_run: Run) -> None:
    rows = _run(fault_run, by_names(["object store unreachable"]))
    assert rows[0].status != "not run", rows[0].notes
    _judge(rows, fault_run)
