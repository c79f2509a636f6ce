"""Row 2: end to end, from a directive's 201 at intake to its last task being available in every unit's
queue, at a steady rate (27 sample units, the sample rules)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.broker import ArrivalRecorder, queue_depth, queue_depths
from bench.context import Context
from bench.harness import ROOT, RssSampler, base_environ, migrate, progress, token, wait_until
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


def _send(client: HttpClient, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    answer = client.send(Request(method, path, body, headers))
    if answer.status not in (200, 201):
        raise RuntimeError(f"{method} {path} answered {answer.status}: {answer.body[:300]!r}")
    return json.loads(answer.body)


def run(ctx: Context) -> RowResult:
    from shared.db import make_engine

    row = RowResult("2", TITLE)
    rate, duration = (20.0, 5.0) if ctx.quick else (50.0, 60.0)
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
    recorder = ArrivalRecorder(amqp, [f"routing.tasks.{c}" for c in codes])
    recorder.start()

    bearer = token(ctx.jwt_secret, "submitter")
    pdf = pdf_of_size(100 * 1024)

    def make(index: int) -> Request:
        serial = SERIAL_START + index
        body, content_type = directive_body(numbered(samples[index % len(samples)], serial), pdf)
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
    progress(f"row 2: {rate:.0f} directives/s for {duration:.0f} s")
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
        while time.monotonic() < deadline and len(recorder.snapshot()) < expected_total:
            time.sleep(0.1)
    recorder.stop()
    ctx.record_memory(sampler, "2")
    arrivals = recorder.snapshot()
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
    pct = latency_percentiles(latencies)
    row.figures.append(
        Figure(
            row="2",
            name=f"201 → last task in its units' queues, p99 ({rate:.0f}/s for {duration:.0f} s)",
            unit="ms",
            value=summarize([pct["p99_ms"]]) if latencies else None,
            target="< 500 ms",
            below=500.0,
        )
    )
    row.figures.append(
        Figure(row="2", name="same, p50", unit="ms", value=summarize([pct["p50_ms"]]) if latencies else None)
    )
    for name, stage in (
        ("stage 1: 201 → the directive's last task created by routing", to_ledger),
        ("stage 2: a task created → delivered from its unit queue", to_queue),
    ):
        if stage:
            stage_pct = latency_percentiles(stage)
            row.figures.append(
                Figure(
                    row="2",
                    name=f"{name}, p50",
                    unit="ms",
                    value=summarize([stage_pct["p50_ms"]]),
                )
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
    if accepted and not missing and arrivals:
        # How fast the stack routed: every accepted directive's tasks delivered, over the time from the
        # first send to the last delivery. At or near the offered rate when the stack keeps up; below it,
        # this machine's routing capacity.
        first_sent_at = min(s.answered_at - s.latency for s in sent)
        routed_rate = len(accepted) / (max(a.at for a in arrivals) - first_sent_at)
        row.figures.append(
            Figure(
                row="2",
                name="directives routed per second, first send → last task delivered",
                unit="/s",
                value=summarize([routed_rate]),
                note="the stack's routing capacity when below the offered rate",
            )
        )
    # The latency above starts at the 201: it means "at 50/s" only if intake took the directives that fast.
    # When every sender waits on intake, requests queue in the bench and leave late; this shows it.
    first_sent = min(s.started for s in sent)
    answered = [s.started + s.latency for s in sent if s.status == 201]
    accepted_rate = (len(answered) - 1) / (max(answered) - first_sent) if len(answered) > 1 else 0.0
    row.figures.append(
        Figure(
            row="2",
            name="directives accepted per second, first send → last 201",
            unit="/s",
            value=summarize([accepted_rate]),
            target=f">= {0.98 * rate:.0f} /s (the offered rate, held)",
            at_least=0.98 * rate,
            note=f"offered {rate:.0f}/s",
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
        "three sample directives in turn, each with a new number, issued today (due dates moved as far "
        "ahead) and one 100 KB PDF, sent open-loop at "
        f"{rate:.0f}/s by {SENDERS} sender threads (a request due while all of them wait on intake goes out "
        "late; the send lag says how late)."
    )
    row.notes.append(
        "Definition: a task is available when the broker delivers its routing.task_offered message from "
        "routing.tasks.<unit> to a consumer the bench keeps on all 27 unit queues (pika, auto-ack, prefetch "
        "1000); the figure is, per directive, the latest such delivery minus the moment its 201 arrived "
        "(both wall clock in the bench process). Expected tasks per directive come from "
        "POST /v1/rules:evaluate; "
        "a task is missing when fewer offers than that arrived within 90 s after the last send. "
        f"Routing's ledger held {ledger_tasks} tasks for {ledger_directives} directives at the end."
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
