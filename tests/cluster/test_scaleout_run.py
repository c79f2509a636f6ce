"""The scale-out fault run, shortened: two replicas of every API and worker on a three-node RabbitMQ cluster,
PostgreSQL and the S3 server; the busiest queues' leader stopped, a node paused past the net tick, one replica
of each worker killed — a few directives each. `make chaos` runs the full one (80 directives per fault)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.run import Config
from chaos.scaleout import SCALEOUT_FAULTS, ClusterRun
from chaos.servers import RABBITMQ_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_two_replicas_on_a_cluster_lose_duplicate_and_dead_letter_nothing(tmp_path: Path) -> None:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.skip(f"no RabbitMQ server under {RABBITMQ_BIN}")
    config = Config(
        faults=list(SCALEOUT_FAULTS),
        directives_per_fault=6,
        rate=3.0,
        outage=10.0,  # the pause lasts at least twice the net tick (20 s) whatever this says
        workdir=tmp_path / "scale-out",
        keep=True,  # pytest's temp folders keep the logs of the last runs for a failure's post-mortem
    )
    with ClusterRun(config) as run:
        rows = [run.run_fault(fault) for fault in config.faults]
        report = "\n".join(
            f"{r.fault}: status {r.status}, recovered {r.recover_seconds}, lost {r.lost}, "
            f"duplicated {r.duplicated}, dead-lettered {r.dead_lettered}, operator {r.operator}; "
            f"problems {r.problems}; notes {r.notes}"
            for r in rows
        )
        for row in rows:
            assert row.status == "ok", report
            assert row.accepted == row.sent > 0, report
            assert row.recover_seconds is not None, report
            assert (row.lost, row.duplicated, row.dead_lettered, row.operator) == (0, 0, 0, []), report
        final = run.final_check()
        assert final.clean, final.as_dict()
        assert final.stored == final.accepted == len(run.expected.accepted) == 3 * 6
        audit = run.relay_audit
        assert audit["published_by_two_relays_holding_it"] == 0, audit
        # Both replicas' relays published (each replica relays its own share of the outbox).
        assert audit["message_ids"] > 0 and len(audit["by_publisher"]) >= 2, audit
