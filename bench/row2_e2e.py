"""Row 2: end to end, from a directive's 201 at intake to its last task being available in every unit's
queue, at a steady rate (27 sample units, the sample rules)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.broker import Arrival, ArrivalRecorder, queue_depth, queue_depths
from bench.context import Context
from bench.cpu import CpuMeter, backend_pids, broker_pids, per_unit_ms, tree
from bench.harness import (
    PG_ADMIN_URL,
    PYTHON,
    ROOT,
    RssSampler,
    base_environ,
    migrate,
    progress,
    token,
    wait_until,
)
from bench.load import HttpClient, Request, open_loop
from bench.payloads import dated, directive_body, numbered, pdf_of_size, sample_directives
from bench.report import Figure, RowResult
from bench.stats import latency_percentiles, summarize

TITLE = "end to end: 201 at intake → last task available in every unit's queue"
SAMPLES = ROOT / "samples"
SERIAL_START = 2_000_000
ROUTING_WORKERS = 2  # deploy/k8s/overlays/production: routing-worker replicas
# Enough that the offered rate reaches intake even when its answers take a second.
SENDERS = 64
# Directives in flight in the capacity phase's closed loop (the most the backlog can hold).
IN_FLIGHT = 16
# The raw pipeline's producer processes (one per core here).
RAW_PRODUCERS = 2


def _send(client: HttpClient, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    answer = client.send(Request(method, path, body, headers))
    if answer.status not in (200, 201):
        raise RuntimeError(f"{method} {path} answered {answer.status}: {answer.body[:300]!r}")
    return json.loads(answer.body)


def _raw_baseline(
    ctx: Context, amqp: str, units: list[str], tasks: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """Runs bench/raw_pipeline.py on the same servers: its figures and CPU seconds per kind in its window."""
    url = ctx.infra.database("raw_pipeline")
    warmup, duration = (2.0, 6.0) if ctx.quick else (5.0, 30.0)
    command = [
        PYTHON,
        "-m",
        "bench.raw_pipeline",
        "--pg",
        url.replace("+psycopg", ""),
        "--amqp",
        amqp,
        "--units",
        ",".join(units),
        "--tasks",
        str(tasks),
        "--producers",
        str(RAW_PRODUCERS),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
    ]
    popen = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meter = CpuMeter(
        {
            "raw pipeline (producers + consumer)": lambda: tree(popen.pid),
            "PostgreSQL (backends)": backend_pids(PG_ADMIN_URL, [url.rsplit("/", 1)[1]]),
            "RabbitMQ (shared node)": broker_pids,
        }
    )
    figures: dict[str, Any] = {}
    assert popen.stdout is not None
    for line in popen.stdout:
        if line.startswith("BEGIN"):
            meter.start()
        elif line.startswith("END"):
            meter.stop()
        elif line.startswith("{"):
            figures = json.loads(line)
    _, err = popen.communicate(timeout=120)
    if popen.returncode or not figures:
        raise RuntimeError(f"raw pipeline failed ({popen.returncode}): {err[-2000:]}")
    return figures, meter.seconds


class _Completions:
    """Counts each directive's task offers as the recorder sees them; a sender waits for its directive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._got: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._want: dict[str, tuple[int, threading.Event]] = {}
        self.done_at: dict[str, float] = {}

    def arrived(self, arrival: Arrival) -> None:
        with self._lock:
            got = self._got.get(arrival.directive_id, 0) + 1
            self._got[arrival.directive_id] = got
            self._last[arrival.directive_id] = max(self._last.get(arrival.directive_id, 0.0), arrival.at)
            want = self._want.get(arrival.directive_id)
            if want is not None and got >= want[0] and arrival.directive_id not in self.done_at:
                self.done_at[arrival.directive_id] = arrival.at
                want[1].set()

    def wait(self, directive_id: str, expected: int, timeout: float) -> float | None:
        event = threading.Event()
        with self._lock:
            self._want[directive_id] = (expected, event)
            if self._got.get(directive_id, 0) >= expected:
                self.done_at.setdefault(directive_id, self._last[directive_id])
                event.set()
        if not event.wait(timeout):
            return None
        return self.done_at[directive_id]


def _capacity(
    base_url: str,
    make: Callable[[], Request],
    expected: Callable[[dict[str, Any]], int],
    completions: _Completions,
    meter: CpuMeter,
    *,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """Closed loop end to end: IN_FLIGHT senders each register a directive and wait until its last task
    is in its unit queue before sending the next. The backlog is at most IN_FLIGHT directives, so the
    completion rate is what the stack sustains; CPU is read at the window's edges."""
    stop = threading.Event()
    lock = threading.Lock()
    completed: list[float] = []
    accepted: list[float] = []
    errors: list[str] = []

    def sender() -> None:
        client = HttpClient(base_url)
        try:
            while not stop.is_set():
                answer = client.send(make())
                if answer.status != 201:
                    errors.append(f"{answer.status}: {answer.body[:200]!r}")
                    continue
                body = json.loads(answer.body)
                with lock:
                    accepted.append(time.time())
                done = completions.wait(body["id"], expected(body), timeout=120)
                if done is None:
                    errors.append(f"directive {body['id']}: tasks not all delivered within 120 s")
                    continue
                with lock:
                    completed.append(done)
        finally:
            client.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(IN_FLIGHT)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    begin = time.time()
    meter.start()
    time.sleep(duration)
    meter.stop()
    end = time.time()
    stop.set()
    for thread in threads:
        thread.join(timeout=150)
    in_window = sum(1 for t in completed if begin <= t < end)
    return {
        "in_flight": IN_FLIGHT,
        "window_s": end - begin,
        "completed_in_window": in_window,
        "directives_per_s": in_window / (end - begin),
        "accepted_per_s": sum(1 for t in accepted if begin <= t < end) / (end - begin),
        "errors": errors[:5],
        "error_count": len(errors),
    }


def run(ctx: Context) -> RowResult:
    from shared.db import make_engine

    row = RowResult("2", TITLE)
    amqp = ctx.infra.vhost()
    urls = {"intake": ctx.infra.database("intake_e2e"), "routing": ctx.infra.database("routing_e2e")}
    for svc, url in urls.items():
        migrate(svc, url)
    env = base_environ(
        data_dir=ctx.scratch("e2e"), amqp_url=amqp, jwt_secret=ctx.jwt_secret, database_urls=urls
    )
    routing = ctx.launcher.service("routing", env)
    assert routing.base_url is not None
    clerk = {"Authorization": f"Bearer {token(ctx.jwt_secret, 'clerk')}"}
    client = HttpClient(routing.base_url)
    units_yaml = (SAMPLES / "units.yaml").read_bytes()
    _send(client, "POST", "/v1/units:import", units_yaml, {**clerk, "Content-Type": "application/yaml"})
    _send(
        client,
        "PUT",
        "/v1/rules",
        (SAMPLES / "rules.yaml").read_bytes(),
        {**clerk, "Content-Type": "application/yaml"},
    )
    codes = [u["code"] for u in _send(client, "GET", "/v1/units?per_page=100", b"", clerk)["items"]]
    # Issued today (UTC, never ahead of the Hà Nội date the intake numbers by), due as far ahead as the
    # originals were.
    samples = [dated(m, datetime.now(UTC).date()) for m in sample_directives()]
    expected_per_sample = [
        len(
            _send(
                client,
                "POST",
                "/v1/rules:evaluate",
                json.dumps(m, ensure_ascii=False).encode(),
                {**clerk, "Content-Type": "application/json"},
            )["tasks"]
        )
        for m in samples
    ]
    client.close()

    # The raw pipeline first, on the same servers, while docroute's processes are idle or not yet started.
    raw_tasks = round(sum(expected_per_sample) / len(expected_per_sample))
    progress(f"row 2: raw pipeline baseline ({raw_tasks} tasks per directive)")
    raw, raw_cpu_s = _raw_baseline(ctx, amqp, codes, raw_tasks)
    raw_cpu = per_unit_ms(raw_cpu_s, raw["completed_in_window"])
    progress(f"row 2: raw pipeline {raw['directives_per_s']:.1f} directives/s")

    # As the production overlay runs it: two routing worker replicas, each with its consumers and relay.
    routing_workers = [ctx.launcher.worker("routing", env) for _ in range(ROUTING_WORKERS)]
    # The intake relay publishes `mandatory`: the routing consumer's queue must exist first.
    wait_until(
        lambda: queue_depth(amqp, "routing.intake.directive_registered") is not None,
        timeout=60,
        interval=0.5,
        what="routing's directive_registered queue",
    )
    wait_until(
        lambda: None not in queue_depths(amqp, [f"routing.tasks.{c}" for c in codes]).values(),
        timeout=60,
        interval=0.5,
        what="the unit queues",
    )
    intake = ctx.launcher.service("intake", env)
    intake_worker = ctx.launcher.worker("intake", env)
    assert intake.base_url is not None
    completions = _Completions()
    recorder = ArrivalRecorder(amqp, [f"routing.tasks.{c}" for c in codes], on_arrival=completions.arrived)
    recorder.start()

    bearer = token(ctx.jwt_secret, "submitter")
    pdf = pdf_of_size(100 * 1024)
    serials = itertools.count()
    serial_lock = threading.Lock()

    def make(index: int | None = None) -> Request:
        with serial_lock:
            serial = SERIAL_START + next(serials)
        body, content_type = directive_body(numbered(samples[serial % len(samples)], serial), pdf)
        return Request(
            "POST",
            "/v1/directives",
            body,
            {
                "Authorization": f"Bearer {bearer}",
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
            },
        )

    sampler = RssSampler()
    for proc, label in (
        (intake, "intake (gunicorn master+workers)"),
        (routing, "routing (gunicorn master+workers)"),
        *((w, "routing worker" + (f" {i + 1}" if i else "")) for i, w in enumerate(routing_workers)),
        (intake_worker, "intake worker"),
    ):
        sampler.watch(proc, label)
    meter = CpuMeter(
        {
            "intake web (gunicorn)": lambda: tree(intake.popen.pid),
            "intake worker (relay)": lambda: tree(intake_worker.popen.pid),
            "routing web (gunicorn)": lambda: tree(routing.popen.pid),
            "routing workers": lambda: [p for w in routing_workers for p in tree(w.popen.pid)],
            "PostgreSQL (backends)": backend_pids(PG_ADMIN_URL, [u.rsplit("/", 1)[1] for u in urls.values()]),
            "RabbitMQ (shared node)": broker_pids,
            "load generator (bench)": lambda: [os.getpid()],
        }
    )
    warmup, window = (3.0, 8.0) if ctx.quick else (10.0, 40.0)
    progress(f"row 2: capacity, closed loop with {IN_FLIGHT} directives in flight, {window:.0f} s")
    with sampler:
        capacity = _capacity(
            intake.base_url,
            make,
            lambda body: expected_per_sample[_sample_index(body, samples)],
            completions,
            meter,
            warmup=warmup,
            duration=window,
        )
    docroute_cpu = per_unit_ms(meter.seconds, capacity["completed_in_window"])
    cap_rate = capacity["directives_per_s"]
    progress(f"row 2: capacity {cap_rate:.1f} directives/s ({capacity['error_count']} errors)")
    if cap_rate <= 0:
        raise RuntimeError(f"no directive routed in the capacity window: {capacity['errors']}")
    # Every sender waited for its directive's last task before it stopped: nothing of the capacity phase is
    # still on its way.
    arrivals_before = len(recorder.snapshot())

    rate, duration = round(cap_rate / 2, 1), (8.0 if ctx.quick else 60.0)
    progress(f"row 2: latency at 50 % of capacity: {rate:.1f} directives/s for {duration:.0f} s")
    with sampler:
        sent, achieved = open_loop(intake.base_url, make, rate=rate, duration=duration, senders=SENDERS)
        accepted: dict[str, tuple[float, int]] = {}
        failures = [s for s in sent if s.status != 201]
        for s in sent:
            if s.status == 201:
                body = json.loads(s.body)
                accepted[body["id"]] = (s.answered_at, _sample_index(body, samples))
        expected_total = sum(expected_per_sample[i] for _, i in accepted.values())
        progress(
            f"row 2: {len(accepted)} accepted ({achieved:.1f}/s sent); waiting for {expected_total} tasks"
        )
        deadline = time.monotonic() + (30 if ctx.quick else 90)
        while time.monotonic() < deadline and len(recorder.snapshot()) - arrivals_before < expected_total:
            time.sleep(0.1)
    recorder.stop()
    ctx.record_memory(sampler, "2")
    arrivals = [a for a in recorder.snapshot()[arrivals_before:] if a.directive_id in accepted]
    last: dict[str, float] = {}
    count: dict[str, int] = {}
    for a in arrivals:
        last[a.directive_id] = max(last.get(a.directive_id, 0.0), a.at)
        count[a.directive_id] = count.get(a.directive_id, 0) + 1
    created: dict[str, float] = {}
    for a in arrivals:
        created[a.directive_id] = max(created.get(a.directive_id, 0.0), a.created)
    latencies = []
    to_ledger = []  # 201 → routing created the directive's last task (intake relay, broker, routing consumer)
    missing = 0
    for directive_id, (answered_at, sample) in accepted.items():
        got = count.get(directive_id, 0)
        missing += max(expected_per_sample[sample] - got, 0)
        if got >= expected_per_sample[sample]:
            latencies.append(max(last[directive_id] - answered_at, 0.0))
            to_ledger.append(max(created[directive_id] - answered_at, 0.0))
    # Task created → delivered from its unit queue (routing's outbox relay and the broker).
    to_queue = [max(a.at - a.created, 0.0) for a in arrivals]
    engine = make_engine(urls["routing"])
    try:
        with engine.connect() as conn:
            ledger_tasks = conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one()
            ledger_directives = conn.execute(sa.text("SELECT count(*) FROM directives")).scalar_one()
    finally:
        engine.dispose()

    raw_rate = summarize([raw["directives_per_s"]])
    row.figures.append(
        Figure(
            row="2",
            name=f"sustained capacity, directives/s routed end to end (closed loop, {IN_FLIGHT} in flight)",
            unit="/s",
            value=summarize([cap_rate]),
            baseline=raw_rate,
            baseline_name=f"raw pipeline ({raw_tasks} tasks, {RAW_PRODUCERS} producers)",
            target=">= 50% of baseline",
            at_least_ratio=0.5,
        )
    )
    pct = latency_percentiles(latencies)
    row.figures.append(
        Figure(
            row="2",
            name=f"201 → last task in its units' queues, p99 at 50 % of capacity ({rate:.1f}/s for "
            f"{duration:.0f} s)",
            unit="ms",
            value=summarize([pct["p99_ms"]]) if latencies else None,
            target="< 500 ms",
            below=500.0,
        )
    )
    row.figures.append(
        Figure(row="2", name="same, p50", unit="ms", value=summarize([pct["p50_ms"]]) if latencies else None)
    )
    row.figures.append(
        Figure(
            row="2",
            name="CPU per directive, all processes",
            unit="ms",
            value=summarize([docroute_cpu["total"]]) if docroute_cpu else None,
            baseline=summarize([raw_cpu["total"]]) if raw_cpu else None,
            baseline_name="raw pipeline",
            target="<= 2x baseline",
            at_most_ratio=2.0,
        )
    )
    raw_kind = {
        "PostgreSQL (backends)": "PostgreSQL (backends)",
        "RabbitMQ (shared node)": "RabbitMQ (shared node)",
    }
    for kind, ms in docroute_cpu.items():
        if kind == "total":
            continue
        base = raw_cpu.get(raw_kind.get(kind, ""))
        row.figures.append(
            Figure(
                row="2",
                name=f"CPU per directive: {kind}",
                unit="ms",
                value=summarize([ms]),
                baseline=summarize([base]) if base is not None else None,
                baseline_name="raw pipeline" if base is not None else None,
            )
        )
    raw_own = raw_cpu.get("raw pipeline (producers + consumer)")
    if raw_own is not None:
        row.figures.append(
            Figure(
                row="2",
                name="CPU per directive, raw pipeline's own processes (producers + consumer)",
                unit="ms",
                value=summarize([raw_own]),
            )
        )
    for name, stage in (
        ("stage 1: 201 → the directive's last task created by routing", to_ledger),
        ("stage 2: a task created → delivered from its unit queue", to_queue),
    ):
        if stage:
            stage_pct = latency_percentiles(stage)
            row.figures.append(
                Figure(row="2", name=f"{name}, p50", unit="ms", value=summarize([stage_pct["p50_ms"]]))
            )
            row.figures.append(
                Figure(row="2", name=f"{name}, p99", unit="ms", value=summarize([stage_pct["p99_ms"]]))
            )
    row.figures.append(
        Figure(
            row="2",
            name="tasks not in their unit queues 90 s after the last 201 (missing or late)",
            unit="",
            value=summarize([float(missing)]),
            target="0",
            below=0.5,
        )
    )
    # The latency above starts at the 201: it means "at 50 %" only if intake took the directives that fast.
    first_sent = min(s.started for s in sent)
    answered = [s.started + s.latency for s in sent if s.status == 201]
    accepted_rate = (len(answered) - 1) / (max(answered) - first_sent) if len(answered) > 1 else 0.0
    row.figures.append(
        Figure(
            row="2",
            name="directives accepted per second during the latency phase, first send → last 201",
            unit="/s",
            value=summarize([accepted_rate]),
            target=f">= {0.98 * rate:.1f} /s (the offered rate, held)",
            at_least=0.98 * rate,
            note=f"offered {rate:.1f}/s",
        )
    )
    lag = latency_percentiles([max(s.started - s.due, 0.0) for s in sent])
    row.figures.append(
        Figure(
            row="2",
            name="send lag behind the schedule, p99 (every sender waiting on intake)",
            unit="ms",
            value=summarize([lag["p99_ms"]]),
        )
    )
    row.details = {
        "raw_pipeline": raw,
        "raw_cpu_ms_per_directive": raw_cpu,
        "raw_cpu_seconds": raw_cpu_s,
        "capacity": capacity,
        "cpu_ms_per_directive": docroute_cpu,
        "cpu_seconds": meter.seconds,
        "offered_rate": rate,
        "send_rate_achieved": achieved,
        "senders": SENDERS,
        "send_lag_ms": lag,
        "duration_s": duration,
        "accepted": len(accepted),
        "refused": len(failures),
        "first_refusal": failures[0].body[:300].decode("utf-8", "replace") if failures else None,
        "expected_tasks": expected_total,
        "arrived_offers": len(arrivals),
        "missing_tasks": missing,
        "ledger_tasks": ledger_tasks,
        "ledger_directives": ledger_directives,
        "latency_ms": pct,
        "intake_p99_ms": latency_percentiles([s.latency for s in sent if s.status == 201])["p99_ms"],
        "expected_tasks_per_sample": expected_per_sample,
        "recorder_errors": recorder.errors[:5],
    }
    row.notes.append(
        "Stack: intake gunicorn + intake worker (outbox relay), routing gunicorn + "
        f"{ROUTING_WORKERS} routing workers (the production overlay's replica count; each runs 4 directive "
        "consumers and an outbox relay, the relays sharing the outbox with SKIP LOCKED), PostgreSQL, "
        "RabbitMQ, filesystem store; units from samples/units.yaml (27), rules from samples/rules.yaml; the "
        "three sample directives in turn (tasks per directive: "
        f"{'/'.join(map(str, expected_per_sample))}), each with a new number, issued today, one 100 KB PDF."
    )
    row.notes.append(
        f"Capacity: a closed loop over the whole pipeline. {IN_FLIGHT} sender threads each register a "
        "directive and wait until its last task was delivered from its unit queue before sending the next, "
        "so the backlog never exceeds "
        f"{IN_FLIGHT} directives and the rate of completions in the window ({window:.0f} s after "
        f"{warmup:.0f} s of warm-up) is what the stack sustains. Baseline, measured first in the same run on "
        "the same PostgreSQL and RabbitMQ: bench/raw_pipeline.py (no docroute code): per directive one "
        f"transaction inserting the directive row and its {raw_tasks} task rows (psycopg executemany), then "
        f"{raw_tasks} persistent messages to the 27 units' quorum queues, pipelined with publisher confirms "
        f"(py-amqp), consumed by one process; {RAW_PRODUCERS} producer processes, as fast as they go "
        f"({raw['window_s']:.0f} s window)."
    )
    row.notes.append(
        "Latency: open loop at half the capacity just measured, "
        f"{SENDERS} sender threads. A task is available when the broker delivers its routing.task_offered "
        "message from routing.tasks.<unit> to a consumer the bench keeps on all 27 unit queues (pika, "
        "auto-ack, prefetch 1000); the figure is, per directive, the latest such delivery minus the moment "
        "its 201 arrived (both wall clock in the bench process). Expected tasks per directive come from "
        "POST /v1/rules:evaluate. "
        f"Routing's ledger held {ledger_tasks} tasks for {ledger_directives} directives at the end."
    )
    row.notes.append(
        "CPU per directive: utime + stime from /proc/<pid>/stat of every process of a kind, read at the "
        "edges of the capacity window (the raw pipeline's likewise), divided by the directives completed "
        "in it. PostgreSQL counts the backends connected to the row's databases (pg_stat_activity), not the "
        "server's shared writers. The RabbitMQ node and this machine's 2 cores are shared with other work, "
        "so the broker's share includes whatever else it served in the window, for both sides."
    )
    return row


def _sample_index(body: dict[str, Any], samples: list[dict[str, Any]]) -> int:
    number = str(body.get("number", ""))
    for index, sample in enumerate(samples):
        tail = (
            sample["number"].split("/", 1)[1]
            if "/" in sample["number"]
            else sample["number"].split("-", 1)[1]
        )
        if number.endswith(tail):
            return index
    raise RuntimeError(f"cannot tell which sample directive {number!r} came from")
