"""Row 3: tasks taken and acked per second over REST (poll + ack) across 100 units; baseline: pika
basic_get + basic_ack on the same broker and queues."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import yaml

from bench.broker import connect, publish_offers, queue_depths
from bench.context import Context
from bench.harness import RssSampler, base_environ, migrate, progress, token, wait_until
from bench.ledger import TaskBatch, insert_tasks, task_ids
from bench.load import HttpClient, Request
from bench.report import Figure, RowResult
from bench.stats import summarize

TITLE = "unit polling: tasks taken and acked per second over REST, 100 units"
UNITS = 100
CLIENTS = 8
POLL_MAX = 10


def _wait_depth(amqp_url: str, codes: list[str], expected: int) -> None:
    def filled() -> bool:
        depths = queue_depths(amqp_url, [f"routing.tasks.{c}" for c in codes])
        return sum(d or 0 for d in depths.values()) >= expected

    wait_until(filled, timeout=60, interval=0.5, what=f"{expected} offers in the unit queues")


def _timed_clients(run: Callable[[list[str]], None], codes: list[str]) -> float:
    """Seconds CLIENTS threads take to run `run`, each over its share of `codes` (round-robin)."""
    threads = [threading.Thread(target=run, args=(codes[i::CLIENTS],)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return time.perf_counter() - started


def drain_rest(base_url: str, codes: list[str], tokens: dict[str, str], expected: int) -> tuple[int, float]:
    """CLIENTS threads poll their units round-robin (max POLL_MAX, no wait) and ack the tasks each poll
    returned in one batch acknowledgement."""
    acked = 0
    lock = threading.Lock()
    errors: list[str] = []
    done = threading.Event()

    def run(mine: list[str]) -> None:
        nonlocal acked
        client = HttpClient(base_url)
        empty_rounds = 0
        try:
            while not done.is_set() and empty_rounds < 3:
                got = 0
                for code in mine:
                    auth = {"Authorization": f"Bearer {tokens[code]}", "Content-Type": "application/json"}
                    body = json.dumps({"max": POLL_MAX, "wait_seconds": 0}).encode()
                    answer = client.send(Request("POST", f"/v1/units/{code}/tasks:poll", body, auth))
                    if answer.status != 200:
                        errors.append(f"poll {code}: HTTP {answer.status} {answer.body[:200]!r}")
                        done.set()
                        return
                    ids = [item["id"] for item in json.loads(answer.body)["items"]]
                    if not ids:
                        continue
                    ack = client.send(
                        Request(
                            "POST", f"/v1/units/{code}/tasks:ack", json.dumps({"ids": ids}).encode(), auth
                        )
                    )
                    results = json.loads(ack.body)["items"] if ack.status == 200 else []
                    if [r["id"] for r in results if r["result"] == "acked"] != ids:
                        errors.append(f"ack {code}: HTTP {ack.status} {ack.body[:200]!r}")
                        done.set()
                        return
                    got += len(ids)
                with lock:
                    acked += got
                    if acked >= expected:
                        done.set()
                empty_rounds = empty_rounds + 1 if got == 0 else 0
        finally:
            client.close()

    elapsed = _timed_clients(run, codes)
    if errors:
        raise RuntimeError(errors[0])
    return acked, elapsed


def drain_pika(amqp_url: str, codes: list[str], expected: int) -> tuple[int, float]:
    """The baseline: CLIENTS threads, one connection each, basic_get + basic_ack round-robin."""
    taken = 0
    lock = threading.Lock()
    done = threading.Event()

    def run(mine: list[str]) -> None:
        nonlocal taken
        conn = connect(amqp_url)
        channel = conn.channel()
        empty_rounds = 0
        try:
            while not done.is_set() and empty_rounds < 3:
                got = 0
                for code in mine:
                    for _ in range(POLL_MAX):
                        method, _, _ = channel.basic_get(f"routing.tasks.{code}", auto_ack=False)
                        if method is None:
                            break
                        channel.basic_ack(method.delivery_tag)
                        got += 1
                with lock:
                    taken += got
                    if taken >= expected:
                        done.set()
                empty_rounds = empty_rounds + 1 if got == 0 else 0
        finally:
            conn.close()

    elapsed = _timed_clients(run, codes)  # before `taken` is read: the threads add to it
    return taken, elapsed


def run(ctx: Context) -> RowResult:
    import sqlalchemy as sa
    from shared.db import make_engine

    row = RowResult("3", TITLE)
    # 5,000 tasks a round (about 6 s of REST polling here); shorter rounds left the figure to a few
    # noisy seconds.
    per_unit = 4 if ctx.quick else 50
    repeats = ctx.repeats(3)
    amqp = ctx.infra.vhost()
    pg = ctx.infra.database("routing_poll")
    migrate("routing", pg)
    env = base_environ(
        data_dir=ctx.scratch("routing-poll"),
        amqp_url=amqp,
        jwt_secret=ctx.jwt_secret,
        database_urls={"routing": pg},
    )
    routing = ctx.launcher.service("routing", env)
    assert routing.base_url is not None
    prefix = "BENCH"
    codes = [f"{prefix}.{i:05d}" for i in range(UNITS)]
    document = yaml.safe_dump(
        {"units": [{"code": c, "name": f"Đơn vị thử {i}", "groups": ["bench"]} for i, c in enumerate(codes)]},
        allow_unicode=True,
    )
    clerk = token(ctx.jwt_secret, "clerk")
    answer = HttpClient(routing.base_url).send(
        Request(
            "POST",
            "/v1/units:import",
            document.encode("utf-8"),
            {"Authorization": f"Bearer {clerk}", "Content-Type": "application/yaml"},
        )
    )
    if answer.status != 200:
        raise RuntimeError(f"units:import answered {answer.status}: {answer.body[:300]!r}")
    tokens = {c: token(ctx.jwt_secret, "unit", c) for c in codes}
    engine = make_engine(pg)
    rest_rates: list[float] = []
    pika_rates: list[float] = []
    sampler = RssSampler()
    sampler.watch(routing, "routing (gunicorn master+workers)")
    try:
        with sampler:
            for repeat in range(repeats):
                expected = UNITS * per_unit
                publish_offers(
                    amqp, ((str(uuid.uuid4()), c, "baseline") for c in codes for _ in range(per_unit))
                )
                _wait_depth(amqp, codes, expected)
                taken, elapsed = drain_pika(amqp, codes, expected)
                if taken != expected:
                    raise RuntimeError(f"baseline took {taken} of {expected} messages")
                pika_rates.append(taken / elapsed)

                batch = TaskBatch(f"poll{repeat}-{uuid.uuid4().hex[:6]}", per_unit, UNITS, UNITS)
                insert_tasks(engine, batch, unit_prefix=prefix)
                publish_offers(amqp, task_ids(engine, batch.directive_prefix))
                _wait_depth(amqp, codes, expected)
                acked, elapsed = drain_rest(routing.base_url, codes, tokens, expected)
                if acked != expected:
                    raise RuntimeError(f"REST took and acked {acked} of {expected} tasks")
                rest_rates.append(acked / elapsed)
                progress(
                    f"row 3: repeat {repeat + 1}/{repeats}: REST {rest_rates[-1]:.0f} tasks/s, "
                    f"pika {pika_rates[-1]:.0f} msgs/s ({expected} each)"
                )
            with engine.connect() as conn:
                received = conn.execute(
                    sa.text("SELECT count(*) FROM tasks WHERE status = 'received'")
                ).scalar_one()
    finally:
        engine.dispose()
    ctx.record_memory(sampler, "3")
    if received != UNITS * per_unit * repeats:
        raise RuntimeError(
            f"the ledger shows {received} received tasks, expected {UNITS * per_unit * repeats}"
        )
    row.figures.append(
        Figure(
            row="3",
            name=f"tasks taken + acked per second over REST ({CLIENTS} clients, 100 units)",
            unit="/s",
            value=summarize(rest_rates),
            baseline=summarize(pika_rates),
            baseline_name="pika basic_get+ack",
            target=">= 30% of baseline",
            at_least_ratio=0.30,
        )
    )
    details: dict[str, Any] = {
        "rest_tasks_per_s": rest_rates,
        "pika_messages_per_s": pika_rates,
        "tasks_per_round": UNITS * per_unit,
        "clients": CLIENTS,
    }
    row.details = details
    row.notes.append(
        f"Each round puts {per_unit} offers on each of the 100 unit queues (routing.tasks.<code>, quorum), "
        f"then {CLIENTS} client threads drain them round-robin over their units until all are taken. REST: "
        f"POST /v1/units/<code>/tasks:poll {{max: {POLL_MAX}, wait_seconds: 0}} with that unit's token, then "
        "POST /v1/units/<code>/tasks:ack {ids: [...]} with the ids that poll returned, one request per "
        "poll (each answer must say acked for every id; the ledger rows go assigned → received, with their "
        "history and status-changed events; verified by counting). The REST tasks are real ledger rows "
        "inserted by SQL; baseline messages are the same "
        f"envelopes, taken with basic_get (up to {POLL_MAX} per queue visit) and basic_ack on one pika "
        "connection per thread."
    )
    return row
