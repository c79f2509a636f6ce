"""Row 5: poll, unit-ledger and progress latency with 10,000 units and 1,000,000 tasks in PostgreSQL,
against the same at 1,000 tasks; EXPLAIN of the queries behind them records whether indexes are used."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from bench.broker import publish_offers, queue_depth, queue_depths
from bench.context import Context
from bench.harness import base_environ, migrate, progress, token, wait_until
from bench.ledger import TaskBatch, insert_tasks, insert_units, unit_code
from bench.load import HttpClient, Request
from bench.report import Figure, RowResult
from bench.stats import latency_percentiles, summarize

TITLE = "scale: poll, unit ledger and progress latency at 1,000,000 tasks (10,000 units)"
UNITS = 10_000
PER_DIRECTIVE = 25
PAGE = 50  # the ledger page read


def holders(tasks: int) -> int:
    """How many of the units hold the tasks: all 10,000 at 1,000,000 (100 each); at 1,000 as few as keep
    a ledger page near full (25 units, 40 each; a directive's 25 tasks need 25 distinct units). Spread over
    all 10,000 units, 1,000 tasks would give each sampled unit a one-row page, and the ratio would compare
    a 50-row answer with a one-row answer instead of a large table with a small one."""
    return min(UNITS, max(PER_DIRECTIVE, tasks // PAGE))


OPERATIONS = ("poll", "ledger", "progress")


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def scans(plan_json: Any) -> list[str]:
    """'Index Scan on tasks (ix_tasks_unit_status)' style descriptions of every scan node of a plan."""
    out = []
    for node in _plan_nodes(plan_json[0]["Plan"]):
        kind = node.get("Node Type", "")
        if "Scan" in kind:
            relation = node.get("Relation Name", "")
            index = node.get("Index Name")
            out.append(kind + (f" on {relation}" if relation else "") + (f" using {index}" if index else ""))
    return out


@contextmanager
def captured(engine: sa.engine.Engine) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def explain(
    engine: sa.engine.Engine, amqp: str, unit: str, directive_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Runs routing's own handlers in-process, captures their SQL and EXPLAINs each statement (the poll
    gets one offered task first, so its lease UPDATE is among them)."""
    from routing import leases, progress, tasks
    from routing.adapters.unit_queue import KombuUnitQueues

    plans: dict[str, list[dict[str, Any]]] = {}
    calls = {
        "ledger": lambda: tasks.list_unit_tasks(unit, engine=engine, status=None, page=1, per_page=PAGE),
        "progress": lambda: progress.directive_progress(directive_id, engine=engine),
        "poll": lambda: leases.poll_tasks(
            unit, engine=engine, queues=KombuUnitQueues(amqp), max_tasks=1, wait_seconds=0, lease_seconds=60
        ),
    }
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tasks SET lease_expires_at = NULL WHERE unit = :u"), {"u": unit})
        offer = conn.execute(
            sa.text(
                "SELECT id, unit, directive_id FROM tasks WHERE unit = :u AND status = 'assigned' LIMIT 1"
            ),
            {"u": unit},
        ).one()
    publish_offers(amqp, [(offer.id, offer.unit, offer.directive_id)])
    wait_until(
        lambda: (queue_depth(amqp, f"routing.tasks.{unit}") or 0) >= 1,
        timeout=30,
        interval=0.2,
        what="an offer",
    )
    for name, call in calls.items():
        with captured(engine) as statements:
            call()  # type: ignore[no-untyped-call]
        plans[name] = []
        with engine.connect() as conn:
            for statement, parameters in statements:
                result = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
                plan = result if isinstance(result, list) else json.loads(result)
                plans[name].append({"sql": " ".join(statement.split())[:300], "scans": scans(plan)})
            conn.rollback()
    return plans


def _timed(client: HttpClient, request: Request, expect: int = 200) -> tuple[float, bytes]:
    started = time.perf_counter()
    answer = client.send(request)
    elapsed = time.perf_counter() - started
    if answer.status != expect:
        raise RuntimeError(f"{request.method} {request.path}: HTTP {answer.status} {answer.body[:300]!r}")
    return elapsed, answer.body


def measure(ctx: Context, label: str, tasks: int, samples: int, repeats: int) -> dict[str, Any]:
    from shared.db import make_engine

    amqp = ctx.infra.vhost()
    # Unit codes (so queue names) of their own per database: the run shares one vhost.
    prefix = f"S{label.upper()}"
    pg = ctx.infra.database(f"routing_{label}")
    migrate("routing", pg)
    engine = make_engine(pg)
    try:
        started = time.perf_counter()
        insert_units(engine, prefix=prefix, count=UNITS)
        batch = TaskBatch(f"scale-{label}", tasks // PER_DIRECTIVE, PER_DIRECTIVE, holders(tasks))
        insert_tasks(engine, batch, unit_prefix=prefix)
        loaded = time.perf_counter() - started
        progress(f"row 5: {label}: {UNITS} units and {batch.tasks} tasks loaded in {loaded:.0f} s")
        env = base_environ(
            data_dir=ctx.scratch(f"scale-{label}"),
            amqp_url=amqp,
            jwt_secret=ctx.jwt_secret,
            database_urls={"routing": pg},
        )
        routing = ctx.launcher.service("routing", env)
        assert routing.base_url is not None
        # Sampled units and directives are spread over the whole range that holds tasks.
        units_with_tasks = batch.units
        step_u = max(units_with_tasks // samples, 1)
        sample_units = [unit_code(prefix, i) for i in range(0, units_with_tasks, step_u)][:samples]
        step_d = max(batch.directives // samples, 1)
        sample_directives = [batch.directive_id(i) for i in range(0, batch.directives, step_d)][:samples]
        clerk = {"Authorization": f"Bearer {token(ctx.jwt_secret, 'clerk')}"}
        unit_auth = {
            u: {
                "Authorization": f"Bearer {token(ctx.jwt_secret, 'unit', u)}",
                "Content-Type": "application/json",
            }
            for u in sample_units
        }
        client = HttpClient(routing.base_url)
        timings: dict[str, list[list[float]]] = {op: [] for op in OPERATIONS}
        poll_body = json.dumps({"max": 1, "wait_seconds": 0}).encode()
        for _ in range(repeats + 1):  # the first pass warms caches and declares the queues; not counted
            with engine.begin() as conn:
                # The previous pass leased one task per sampled unit: release it, so every pass offers
                # the same kind of task.
                conn.execute(
                    sa.text("UPDATE tasks SET lease_expires_at = NULL WHERE unit = ANY(:units)"),
                    {"units": sample_units},
                )
                offers = conn.execute(
                    sa.text(
                        "SELECT DISTINCT ON (unit) id, unit, directive_id FROM tasks "
                        "WHERE unit = ANY(:units) AND status = 'assigned' AND lease_expires_at IS NULL "
                        "ORDER BY unit, id"
                    ),
                    {"units": sample_units},
                ).all()
            for u in sample_units:
                client.send(Request("POST", f"/v1/units/{u}/tasks:poll", poll_body, unit_auth[u]))
            published = publish_offers(amqp, [(o.id, o.unit, o.directive_id) for o in offers])
            progress(f"row 5: {label}: offered {published} tasks to {len(sample_units)} units")
            # A quorum queue can answer basic_get empty for a moment after confirming a publish.
            wait_until(
                lambda: all(
                    (d or 0) >= 1
                    for d in queue_depths(amqp, [f"routing.tasks.{u}" for u in sample_units]).values()
                ),
                timeout=30,
                interval=0.2,
                what="the offers in the sampled unit queues",
            )
            rounds: dict[str, list[float]] = {op: [] for op in OPERATIONS}
            for u in sample_units:
                elapsed, body = _timed(
                    client, Request("POST", f"/v1/units/{u}/tasks:poll", poll_body, unit_auth[u])
                )
                if len(json.loads(body)["items"]) != 1:
                    raise RuntimeError(f"poll of {u} returned no task although one was offered")
                rounds["poll"].append(elapsed)
                rounds["ledger"].append(
                    _timed(
                        client, Request("GET", f"/v1/units/{u}/tasks?page=1&per_page={PAGE}", None, clerk)
                    )[0]
                )
            for d in sample_directives:
                rounds["progress"].append(
                    _timed(client, Request("GET", f"/v1/directives/{d}/progress", None, clerk))[0]
                )
            for op in OPERATIONS:
                timings[op].append(rounds[op])
        client.close()
        plans = explain(engine, amqp, sample_units[0], sample_directives[0])
        routing.stop()
        counted = {op: timings[op][1:] for op in OPERATIONS}
        return {
            "tasks": batch.tasks,
            "units": UNITS,
            "units_holding_tasks": batch.units,
            "load_seconds": loaded,
            "samples": {"units": len(sample_units), "directives": len(sample_directives)},
            "p50_ms": {op: [latency_percentiles(r)["p50_ms"] for r in counted[op]] for op in OPERATIONS},
            "p99_ms": {op: [latency_percentiles(r)["p99_ms"] for r in counted[op]] for op in OPERATIONS},
            "plans": plans,
        }
    finally:
        engine.dispose()
        ctx.infra.drop_database(pg)


def _holding(measured: dict[str, Any]) -> str:
    tasks, units = measured["tasks"], measured["units_holding_tasks"]
    return f"{units:,} units at {tasks:,} tasks ({tasks // units} each)"


def run(ctx: Context) -> RowResult:
    row = RowResult("5", TITLE)
    big = 100_000 if ctx.quick else 1_000_000
    repeats = ctx.repeats(3)
    samples = 20 if ctx.quick else 50
    small = measure(ctx, "1k", 1_000, samples, repeats)
    large = measure(ctx, "1m" if not ctx.quick else "100k", big, samples, repeats)
    for op, what in (
        ("poll", "poll (one offered task)"),
        ("ledger", f"unit ledger page ({PAGE})"),
        ("progress", "directive progress (25 tasks)"),
    ):
        for stat in ("p50_ms", "p99_ms"):
            row.figures.append(
                Figure(
                    row="5",
                    name=f"{what}, {stat[:3]} at {large['tasks']:,} tasks",
                    unit="ms",
                    value=summarize(large[stat][op]),
                    baseline=summarize(small[stat][op]),
                    baseline_name="1,000 tasks",
                    target="within 2x of baseline",
                    at_most_ratio=2.0,
                )
            )
    index_use: dict[str, bool] = {}
    for op in OPERATIONS:
        task_scans = [s for p in large["plans"][op] for s in p["scans"] if " on tasks" in s]
        index_use[op] = bool(task_scans) and all("Seq Scan" not in s for s in task_scans)
    row.details = {"1k": small, "large": large, "index_used_on_tasks": index_use}
    row.notes.append(
        f"Both databases hold {UNITS:,} units (SQL generate_series) and routed directives with "
        f"{PER_DIRECTIVE} assigned tasks each, spread evenly over the units that hold tasks: "
        f"{_holding(large)}, {_holding(small)}"
        ", so that a ledger page is near full at both sizes and the two differ in the table, not in "
        "the size of the answer. Per repeat, one task of each of "
        f"up to {samples} sampled units is offered on its queue, then each unit polls it (max 1, no wait) "
        "and a clerk "
        f"reads the unit's ledger (page 1, {PAGE} per page); progress is read for {samples} sampled "
        "directives. "
        "Latencies are per request over HTTP (gunicorn, shipped settings), first pass discarded as warm-up."
    )
    for op in OPERATIONS:
        for p in large["plans"][op]:
            row.notes.append(
                f"EXPLAIN {op} at {large['tasks']:,}: {', '.join(p['scans']) or 'no scan'} "
                f"— `{p['sql'][:160]}`"
            )
    row.notes.append(
        "Index scan on tasks for every query: "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in index_use.items())
    )
    return row
