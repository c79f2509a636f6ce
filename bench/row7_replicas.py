"""Row 7: the routing worker's throughput with one replica and with two, on this machine.

A backlog of directives is built in intake's outbox while intake's worker does not run (intake's API takes the
sample directives over HTTP), one — or two — `python -m routing.worker` processes are started and left to
subscribe, then intake's worker starts and its relay publishes the backlog; the bench times from then until
every directive's tasks are in routing's ledger and every task offer has left routing's outbox for its unit's
queue.
Each variant gets a fresh routing database with the same units and rules, and the same backlog size.

What it says, plainly: how many directives a second one routing worker process routes here, and what a
second process adds **on this 2-core machine**, where both share the two cores with PostgreSQL, RabbitMQ and
each other. It is not a measure of horizontal scaling on separate nodes; there a second replica brings its own
cores, and the ceiling moves to PostgreSQL and the broker (docs/scaling.md).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.broker import connect, purge_queues, queue_depths
from bench.context import Context
from bench.harness import ROOT, Proc, base_environ, migrate, progress, token, wait_until
from bench.load import HttpClient, Request, open_loop
from bench.payloads import dated, directive_body, numbered, pdf_of_size, sample_directives
from bench.report import Figure, RowResult
from bench.stats import summarize

TITLE = "routing worker throughput: one replica vs two (on this 2-core machine)"
SAMPLES = ROOT / "samples"
SERIAL_START = 7_000_000
QUEUE = "routing.intake.directive_registered"


def _json(client: HttpClient, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    answer = client.send(Request(method, path, body, headers))
    if answer.status not in (200, 201):
        raise RuntimeError(f"{method} {path} answered {answer.status}: {answer.body[:300]!r}")
    return json.loads(answer.body)


def _consumers(amqp_url: str, queue: str) -> int:
    conn = connect(amqp_url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)
    finally:
        conn.close()


def _counts(engine: sa.Engine) -> tuple[int, int, int]:
    """(directives routed, tasks, outbox rows not yet published) in routing's database."""
    with engine.connect() as conn:
        directives = conn.execute(sa.text("SELECT count(*) FROM directives")).scalar_one()
        tasks = conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one()
        pending = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
    return int(directives), int(tasks), int(pending)


def _variant(ctx: Context, replicas: int, directives: int, serial: int) -> dict[str, Any]:
    """One drain with `replicas` routing workers; its measurements."""
    from shared.db import make_engine

    amqp = ctx.infra.vhost()
    urls = {
        "intake": ctx.infra.database(f"intake_r{replicas}"),
        "routing": ctx.infra.database(f"routing_r{replicas}"),
    }
    for svc, url in urls.items():
        migrate(svc, url)
    env = base_environ(
        data_dir=ctx.scratch(f"replicas{replicas}"),
        amqp_url=amqp,
        jwt_secret=ctx.jwt_secret,
        database_urls=urls,
    )
    routing_api = ctx.launcher.service("routing", env)
    assert routing_api.base_url is not None
    clerk = {"Authorization": f"Bearer {token(ctx.jwt_secret, 'clerk')}"}
    client = HttpClient(routing_api.base_url)
    yaml = {**clerk, "Content-Type": "application/yaml"}
    _json(client, "POST", "/v1/units:import", (SAMPLES / "units.yaml").read_bytes(), yaml)
    _json(client, "PUT", "/v1/rules", (SAMPLES / "rules.yaml").read_bytes(), yaml)
    codes = [u["code"] for u in _json(client, "GET", "/v1/units?per_page=100", b"", clerk)["items"]]
    samples = [dated(m, datetime.now(UTC).date()) for m in sample_directives()]
    per_sample = [
        len(
            _json(
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
    routing_api.stop()

    # One routing worker declares the topology (the intake relay publishes `mandatory`) and the unit queues,
    # then stops.
    first = ctx.launcher.worker("routing", env)
    wait_until(
        lambda: None not in queue_depths(amqp, [QUEUE, *(f"routing.tasks.{c}" for c in codes)]).values(),
        timeout=60,
        interval=0.5,
        what="routing's queues",
    )
    first.stop()
    purge_queues(amqp, [QUEUE, *(f"routing.tasks.{c}" for c in codes)])

    # The backlog waits in intake's outbox: intake's API takes the directives while its worker (the relay)
    # does not run.
    intake = ctx.launcher.service("intake", env)
    assert intake.base_url is not None
    bearer = token(ctx.jwt_secret, "submitter")
    pdf = pdf_of_size(20 * 1024)

    def make(index: int) -> Request:
        body, content_type = directive_body(numbered(samples[index % len(samples)], serial + index), pdf)
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": content_type}
        return Request("POST", "/v1/directives", body, {**headers, "Content-Length": str(len(body))})

    sent, _rate = open_loop(intake.base_url, make, rate=40.0, duration=directives / 40.0, senders=16)
    intake.stop()
    accepted = [s for s in sent if s.status == 201]
    if len(accepted) != len(sent):
        refused = next(s for s in sent if s.status != 201)
        raise RuntimeError(f"intake refused {len(sent) - len(accepted)} directives: {refused.body[:300]!r}")
    expected_tasks = sum(per_sample[i % len(samples)] for i in range(len(sent)))

    from routing.settings import Settings

    per_worker = Settings.from_env(env).consumers_for("postgresql")
    engine = make_engine(urls["routing"])
    workers: list[Proc] = []
    try:
        # Every routing worker started and consuming before the first event is published.
        workers = [ctx.launcher.worker("routing", env) for _ in range(replicas)]
        wait_until(
            lambda: _consumers(amqp, QUEUE) >= replicas * per_worker,
            timeout=120,
            interval=0.5,
            what=f"{replicas} routing worker(s) consuming",
        )
        progress(
            f"row 7: {replicas} routing worker(s) routing {len(accepted)} directives ({expected_tasks} tasks)"
        )
        workers.append(ctx.launcher.worker("intake", env))
        # The clock starts when intake's relay begins to publish the backlog (a few hundred a second, far
        # above routing's rate) and stops when the last offer has left routing's outbox.
        started = time.monotonic()
        deadline = started + (120 if ctx.quick else 600)
        while True:
            routed, tasks, pending = _counts(engine)
            if routed >= len(accepted) and tasks >= expected_tasks and pending == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{replicas} worker(s): {routed}/{len(accepted)} directives, "
                    f"{tasks}/{expected_tasks} tasks, "
                    f"{pending} offers unpublished after {deadline - started:.0f} s"
                )
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
        engine.dispose()
    return {
        "replicas": replicas,
        "directives": len(accepted),
        "tasks": expected_tasks,
        "seconds": seconds,
        "directives_per_s": len(accepted) / seconds,
        "tasks_per_s": expected_tasks / seconds,
    }


def run(ctx: Context) -> RowResult:
    row = RowResult("7", TITLE)
    directives = 40 if ctx.quick else 600
    # One, then two, per round: drift in what else the machine does falls on both alike.
    results = [
        _variant(ctx, replicas, directives, SERIAL_START + (2 * repeat + replicas) * 100_000)
        for repeat in range(ctx.repeats(3))
        for replicas in (1, 2)
    ]
    rates = {n: [r["directives_per_s"] for r in results if r["replicas"] == n] for n in (1, 2)}
    for replicas, values in rates.items():
        seconds = ", ".join(f"{r['seconds']:.1f}" for r in results if r["replicas"] == replicas)
        row.figures.append(
            Figure(
                row="7",
                name=f"directives routed per second, {replicas} routing worker(s)",
                unit="/s",
                value=summarize(values),
                note=f"{directives} directives (~{results[0]['tasks']} tasks) in {seconds} s",
            )
        )
    row.figures.append(
        Figure(
            row="7",
            name="two routing workers ÷ one (this 2-core machine)",
            unit="×",
            value=summarize([two / one for one, two in zip(rates[1], rates[2], strict=True)]),
            note="both processes share 2 cores with PostgreSQL and RabbitMQ: not horizontal scaling",
        )
    )
    row.details = {"variants": results}
    row.notes.append(
        "Backlog first, then the drain: intake's API takes the three sample directives in turn (each with a "
        "new number and one 20 KB PDF) while intake's worker does not run, so they wait in its outbox; 1 (or "
        "2) `python -m routing.worker` processes start and subscribe (each with its directive consumers and "
        "its outbox relay; the two relays share routing's outbox with SKIP LOCKED); then intake's worker "
        "starts and its relay publishes the backlog. Timed from that start until routing's ledger holds "
        "every directive's tasks and its outbox has none left to publish (every offer confirmed by the "
        "broker into its unit's queue). A fresh intake and routing database per variant, same units "
        "(samples/units.yaml), rules (samples/rules.yaml) and sequence of directives."
    )
    row.notes.append(
        "Said plainly: this machine has 2 cores, shared by PostgreSQL, RabbitMQ and the workers (and, when "
        "the bench runs beside other work, by that too). A second routing worker here only shows what a "
        "second process gets out of the same cores — overlap of database and broker waits — not what a "
        "second replica on its own node would add."
    )
    return row
