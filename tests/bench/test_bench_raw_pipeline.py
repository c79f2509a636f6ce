"""Row 2's raw-pipeline baseline and the CPU meter that reads /proc at a window's edges."""

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest

from bench.cpu import CpuMeter, cpu_seconds, per_unit_ms, tree
from bench.harness import ROOT


def test_cpu_seconds_grow_with_work_and_a_gone_pid_reads_none() -> None:
    meter = CpuMeter({"me": lambda: [os.getpid()]})
    meter.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    seconds = meter.stop()
    assert seconds["me"] >= 0.15
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) is None


def test_a_process_tree_lists_the_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in tree(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_cpu_per_directive_adds_a_total() -> None:
    assert per_unit_ms({"web": 1.0, "db": 0.5}, 100) == {"web": 10.0, "db": 5.0, "total": 15.0}
    assert per_unit_ms({"web": 1.0}, 0) == {}


@pytest.mark.integration
def test_the_raw_pipeline_writes_publishes_and_consumes_every_directive(pg_url: str, amqp_url: str) -> None:
    url = pg_url.replace("+psycopg", "")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.raw_pipeline",
            *("--pg", url, "--amqp", amqp_url, "--units", "A,B,C", "--tasks", "5"),
            *("--producers", "1", "--warmup", "0.5", "--duration", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("BEGIN") and lines[1].startswith("END")
    figures = json.loads(lines[2])
    assert figures["completed_in_window"] > 0
    # Every directive published was consumed whole, and the database holds its N task rows.
    assert figures["completed_total"] == figures["published_total"]
    assert figures["incomplete_at_exit"] == 0
    with psycopg.connect(url) as conn:
        directives = conn.execute("SELECT count(*) FROM directives").fetchone()
        tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()
        titles = conn.execute("SELECT DISTINCT title FROM tasks").fetchall()
    assert directives is not None and directives[0] == figures["published_total"]
    assert tasks is not None and tasks[0] == 5 * figures["published_total"]
    assert [t for (t,) in titles] == ["Tuyên truyền, quảng bá, lan tỏa ứng dụng i-Speed đến người dân"]


def _arrival(directive_id: str, at: float):
    from bench.broker import Arrival

    return Arrival(task_id="t", directive_id=directive_id, unit="SYT", at=at, created=at)


def test_a_closed_loop_sender_is_released_by_its_directives_last_task_whenever_it_arrives() -> None:
    import threading

    from bench.row2_e2e import _Completions

    completions = _Completions()
    # Tasks that arrive before the sender has read its 201 still count.
    completions.arrived(_arrival("d-1", 1.0))
    completions.arrived(_arrival("d-1", 2.0))
    assert completions.wait("d-1", 2, timeout=1) == 2.0
    # A sender waiting for three tasks is released by the third, with the third's time.
    done: list[float | None] = []
    waiter = threading.Thread(target=lambda: done.append(completions.wait("d-2", 3, timeout=10)))
    waiter.start()
    for at in (3.0, 4.0):
        completions.arrived(_arrival("d-2", at))
    assert done == []
    completions.arrived(_arrival("d-2", 5.0))
    waiter.join(timeout=10)
    assert done == [5.0]
    # One task short: the wait times out.
    completions.arrived(_arrival("d-3", 6.0))
    assert completions.wait("d-3", 2, timeout=0.2) is None
