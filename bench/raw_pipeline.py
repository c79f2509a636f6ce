"""Row 2's raw-pipeline baseline: the essential work of routing one directive, with no docroute code.

Per directive: one PostgreSQL transaction that inserts the directive row and its N task rows, then N
persistent messages (one per task, to its unit's quorum queue) published with publisher confirms, the
whole batch on the wire before the confirms are awaited; a consumer on every unit queue takes them. As fast
as it can: `--producers` processes loop over directives, one consumer process counts a directive done
when its N-th message arrived.

Run by bench/row2_e2e.py as `python -m bench.raw_pipeline ...` (plain psycopg and py-amqp only). It
prints `BEGIN` and `END` lines at the edges of the measured window (after `--warmup` s), so that the bench
can read the CPU of every process kind at those moments, then one JSON line with its figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
import uuid
from typing import Any

import amqp
import psycopg

EXCHANGE = "raw.tasks"
SCHEMA = """
CREATE TABLE IF NOT EXISTS directives (
    id uuid PRIMARY KEY, number text NOT NULL, subject text NOT NULL, received_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id uuid PRIMARY KEY, directive_id uuid NOT NULL REFERENCES directives (id), unit text NOT NULL,
    title text NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_tasks_directive ON tasks (directive_id);
"""
TITLE = "Tuyên truyền, quảng bá, lan tỏa ứng dụng i-Speed đến người dân"


def queue_of(unit: str) -> str:
    return f"{EXCHANGE}.{unit}"


def _amqp(url: str) -> amqp.Connection:
    # amqp://user:pass@host:port/vhost (the vhost percent-encoded, as the bench writes it)
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    conn = amqp.Connection(
        host=f"{parts.hostname}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=unquote(parts.path[1:]) or "/",
    )
    conn.connect()
    return conn


def setup(pg_url: str, amqp_url: str, units: list[str]) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    conn = _amqp(amqp_url)
    try:
        channel = conn.channel()
        channel.exchange_declare(EXCHANGE, "direct", durable=True, auto_delete=False)
        for unit in units:
            channel.queue_declare(
                queue_of(unit), durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
            )
            channel.queue_bind(queue_of(unit), EXCHANGE, unit)
    finally:
        conn.close()


def teardown(amqp_url: str, units: list[str]) -> None:
    conn = _amqp(amqp_url)
    try:
        channel = conn.channel()
        for unit in units:
            channel.queue_delete(queue_of(unit))
        channel.exchange_delete(EXCHANGE)
    finally:
        conn.close()


def produce(pg_url: str, amqp_url: str, units: list[str], n: int, stop_at: float, done: Any) -> None:
    """Routes directives until `stop_at` (time.time()); `done` counts the directives published."""
    db = psycopg.connect(pg_url)
    conn = _amqp(amqp_url)
    channel = conn.channel()
    channel.confirm_select()
    confirmed: set[int] = set()
    nacked: list[int] = []

    def on_ack(tag: int, multiple: bool) -> None:
        if multiple:
            confirmed.update(t for t in range(1, tag + 1))
        else:
            confirmed.add(tag)

    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(lambda tag, multiple: nacked.append(tag))
    tag = 0
    serial = 0
    targets = [units[i % len(units)] for i in range(n)]
    try:
        while time.time() < stop_at:
            serial += 1
            directive_id = uuid.uuid4()
            task_ids = [uuid.uuid4() for _ in range(n)]
            with db.transaction(), db.cursor() as cur:
                cur.execute(
                    "INSERT INTO directives (id, number, subject, received_at) VALUES (%s, %s, %s, now())",
                    (directive_id, f"{serial}/CVT-{uuid.uuid4().hex[:6]}", TITLE),
                )
                cur.executemany(
                    "INSERT INTO tasks (id, directive_id, unit, title, status, created_at)"
                    " VALUES (%s, %s, %s, %s, 'assigned', now())",
                    [(task_ids[i], directive_id, targets[i], TITLE) for i in range(n)],
                )
            first = tag + 1
            for i in range(n):
                body = json.dumps(
                    {
                        "id": str(uuid.uuid4()),
                        "type": "routing.task_offered",
                        "occurred_at": time.time(),
                        "payload": {
                            "id": str(task_ids[i]),
                            "directive_id": str(directive_id),
                            "unit": targets[i],
                            "title": TITLE,
                            "status": "assigned",
                        },
                    },
                    ensure_ascii=False,
                ).encode("utf-8")
                message = amqp.Message(body, content_type="application/json", delivery_mode=2)
                tag += 1
                channel.send_method(
                    amqp.spec.Basic.Publish, "Bssbb", (0, EXCHANGE, targets[i], True, False), message
                )
            while not all(t in confirmed for t in range(first, tag + 1)):
                conn.drain_events(timeout=10)
            if nacked:
                raise RuntimeError(f"broker nacked {len(nacked)} messages")
            confirmed.difference_update(range(first, tag + 1))
            with done.get_lock():
                done.value += 1
    finally:
        conn.close()
        db.close()


def consume(amqp_url: str, units: list[str], n: int, stop_at: float, out: Any) -> None:
    """Takes every message; sends back the time each directive's N-th message arrived."""
    conn = _amqp(amqp_url)
    channel = conn.channel()
    channel.basic_qos(0, 1000, False)
    counts: dict[str, int] = {}
    completed: list[float] = []

    def on_message(message: amqp.Message) -> None:
        directive_id = json.loads(message.body)["payload"]["directive_id"]
        got = counts.get(directive_id, 0) + 1
        if got == n:
            completed.append(time.time())
            del counts[directive_id]
        else:
            counts[directive_id] = got

    for unit in units:
        channel.basic_consume(queue_of(unit), no_ack=True, callback=on_message)
    try:
        while time.time() < stop_at:
            try:
                conn.drain_events(timeout=0.2)
            except TimeoutError:
                continue
    finally:
        conn.close()
    out.put({"completed": completed, "incomplete": len(counts)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_pipeline", description=__doc__)
    parser.add_argument("--pg", required=True)
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--units", required=True, help="comma list of unit codes")
    parser.add_argument("--tasks", type=int, required=True, help="task rows and messages per directive")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    units = args.units.split(",")
    setup(args.pg, args.amqp, units)
    start = time.time()
    begin, end = start + args.warmup, start + args.warmup + args.duration
    # The producers outlive the window by a second (the CPU of every process is read at its end), and the
    # consumer outlives them, so the window's last messages are taken.
    ctx = mp.get_context("fork")
    done = ctx.Value("q", 0)
    results: Any = ctx.Queue()
    consumer = ctx.Process(target=consume, args=(args.amqp, units, args.tasks, end + 3.0, results))
    consumer.start()
    producers = [
        ctx.Process(target=produce, args=(args.pg, args.amqp, units, args.tasks, end + 1.0, done))
        for _ in range(args.producers)
    ]
    for p in producers:
        p.start()
    time.sleep(max(begin - time.time(), 0.0))
    published_at_begin = done.value
    print(f"BEGIN {time.time():.6f}", flush=True)
    time.sleep(max(end - time.time(), 0.0))
    published_at_end = done.value
    print(f"END {time.time():.6f}", flush=True)
    for p in producers:
        p.join(timeout=60)
    outcome = results.get(timeout=60)
    consumer.join(timeout=30)
    completed = outcome["completed"]
    in_window = sum(1 for t in completed if begin <= t < end)
    figures = {
        "window_s": args.duration,
        "completed_in_window": in_window,
        "directives_per_s": in_window / args.duration,
        "published_per_s": (published_at_end - published_at_begin) / args.duration,
        "published_total": done.value,
        "completed_total": len(completed),
        "incomplete_at_exit": outcome["incomplete"],
        "tasks_per_directive": args.tasks,
        "producers": args.producers,
    }
    print(json.dumps(figures), flush=True)
    teardown(args.amqp, units)
    failed = [p.exitcode for p in [*producers, consumer] if p.exitcode]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
