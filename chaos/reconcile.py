"""What a fault run checks after each fault: every accepted directive stored once with a gapless arrival
number, its tasks as the rules say, one offer per task, one archived record and one locked object version per
file, the audit chain intact, every dead-letter queue empty and no orphan in staging."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika
import requests
import sqlalchemy as sa
from shared.naming import SUBSCRIPTIONS, dlq_name, queue_name, unit_queue

from chaos.client import Outcome
from chaos.stack import Stack

STAGING_PREFIX = "directives/"  # intake's uploads; routing's report files live under tasks/


@dataclass
class Expectation:
    """What the run knows it asked for: accepted directive ids with their sample, and tasks per sample."""

    accepted: dict[str, int] = field(default_factory=dict)  # directive id → sample index
    external_ids: dict[str, str] = field(default_factory=dict)  # directive id → external id sent
    files: dict[str, int] = field(default_factory=dict)  # directive id → files sent
    tasks_per_sample: list[int] = field(default_factory=list)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.directive_id is not None:
                self.accepted[outcome.directive_id] = outcome.submission.sample
                self.external_ids[outcome.directive_id] = str(outcome.submission.metadata["external_id"])
                self.files[outcome.directive_id] = len(outcome.submission.files)

    @property
    def tasks(self) -> int:
        return sum(self.tasks_per_sample[sample] for sample in self.accepted.values())


@dataclass
class Findings:
    """One reconciliation. Each list names what is wrong; all empty means the run is whole."""

    accepted: int = 0
    stored: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    dead_lettered: dict[str, int] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    offers: int = 0
    tasks: int = 0
    records: int = 0
    audit_entries: int = 0
    copies: int = 0  # offer messages re-sent with the same envelope id (see OfferLedger.copies)
    young_orphans: int = 0  # staging uploads without a directive, younger than the sweep's age

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_lettered.values())

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.dead_lettered or self.other)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "stored": self.stored,
            "tasks": self.tasks,
            "offers": self.offers,
            "records": self.records,
            "audit_entries": self.audit_entries,
            "offer_copies": self.copies,
            "young_staging_orphans": self.young_orphans,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "dead_lettered": self.dead_lettered,
            "other": self.other,
        }


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, pool_pre_ping=True, poolclass=sa.pool.NullPool)


def _rows(url: str, sql: str, **params: Any) -> list[sa.Row[Any]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def progress_counts(stack: Stack) -> dict[str, int]:
    """Cheap counts for waiting until the stack has taken its backlog: tasks, records, attachments and the
    rows each outbox has yet to publish."""
    urls = stack.database_urls
    counts = {
        "tasks": _rows(urls["routing"], "SELECT count(*) FROM tasks")[0][0],
        "routed": _rows(urls["routing"], "SELECT count(*) FROM directives")[0][0],
        "attachments": _rows(urls["intake"], "SELECT count(*) FROM attachments")[0][0],
        "records": _rows(urls["archive"], "SELECT count(*) FROM records WHERE source_kind = 'attachment'")[0][
            0
        ],
    }
    for service, url in urls.items():
        counts[f"{service}_outbox"] = _rows(url, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][
            0
        ]
    return counts


def settled(stack: Stack, expected: Expectation) -> bool:
    """True once every accepted directive is routed and archived and every outbox is empty."""
    counts = progress_counts(stack)
    return (
        counts["tasks"] >= expected.tasks
        and counts["routed"] >= len(expected.accepted)
        and counts["records"] >= counts["attachments"]
        and all(counts[f"{service}_outbox"] == 0 for service in stack.database_urls)
    )


class OfferLedger:
    """Takes every message off the unit queues (the run has no unit that would) and counts offers per task."""

    def __init__(self) -> None:
        self.per_task: Counter[str] = Counter()  # every offer message, copies included
        self.envelopes: dict[str, set[str]] = {}  # task id → distinct envelope ids offering it
        self.unreadable = 0

    def drain(self, amqp_url: str, units: Iterable[str]) -> None:
        params = pika.URLParameters(amqp_url)
        params.socket_timeout = 10
        conn = pika.BlockingConnection(params)
        try:
            channel = conn.channel()
            for code in units:
                while True:
                    method, _, body = channel.basic_get(unit_queue(code), auto_ack=True)
                    if method is None:
                        break
                    try:
                        envelope = json.loads(body.decode("utf-8"))
                    except ValueError:
                        self.unreadable += 1
                        continue
                    if envelope.get("type") == "routing.task_offered":
                        task = str(envelope["payload"]["id"])
                        self.per_task[task] += 1
                        self.envelopes.setdefault(task, set()).add(str(envelope.get("id")))

        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def copies(self) -> int:
        """Offer messages that repeat an envelope already seen: one outbox row published twice, which the
        relay does when the broker went away before it confirmed (at least once; consumers dedupe by id)."""
        return sum(n - len(self.envelopes.get(task, ())) for task, n in self.per_task.items())


def consumer_queues() -> list[str]:
    return [queue_name(consumer, source, event) for consumer, source, event, _ in SUBSCRIPTIONS]


def dead_letter_queues(units: Iterable[str]) -> list[str]:
    return [dlq_name(q) for q in consumer_queues()] + [dlq_name(unit_queue(code)) for code in units]


def queue_depths(amqp_url: str, queues: Iterable[str]) -> dict[str, int | None]:
    """Ready messages per queue on one connection; None for a queue that does not exist."""
    params = pika.URLParameters(amqp_url)
    params.socket_timeout = 10
    conn = pika.BlockingConnection(params)
    out: dict[str, int | None] = {}
    try:
        channel = conn.channel()
        for queue in queues:
            try:
                out[queue] = int(channel.queue_declare(queue, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker:
                out[queue] = None
                channel = conn.channel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return out


def _s3(stack: Stack) -> Any:
    from minio import Minio

    s3 = stack.servers.s3
    # Straight to the server, not through the proxy the run may be holding closed.
    return Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)


def reconcile(
    stack: Stack, expected: Expectation, offers: OfferLedger, units: list[str], *, full: bool = False
) -> Findings:
    """Checks the whole run so far (see the module docstring); the findings. `full` also asks the store for
    every archived object's retention (one request per record: for the last check)."""
    urls = stack.database_urls
    found = Findings(accepted=len(expected.accepted))

    # Intake: accepted vs stored, one row per directive sent, arrival numbers 1..N without gap or repeat.
    intake = _rows(urls["intake"], "SELECT id, external_id, arrival_year, arrival_number FROM directives")
    found.stored = len(intake)
    stored_ids = {row.id for row in intake}
    found.lost += [
        f"directive {d} accepted (201) but not stored" for d in expected.accepted if d not in stored_ids
    ]
    per_external = Counter(row.external_id for row in intake)
    found.duplicated += [f"directive {e} stored {n} times" for e, n in per_external.items() if n > 1]
    for year in {row.arrival_year for row in intake}:
        numbers = sorted(row.arrival_number for row in intake if row.arrival_year == year)
        if numbers != list(range(1, len(numbers) + 1)):
            repeats = [n for n, c in Counter(numbers).items() if c > 1]
            gaps = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
            if repeats:
                found.duplicated.append(f"arrival numbers {repeats[:10]} of {year} given twice")
            if gaps:
                found.lost.append(f"arrival numbers {gaps[:10]} of {year} missing (gap)")

    # Routing: the tasks per directive the rules say, no more, no less.
    tasks = _rows(urls["routing"], "SELECT id, directive_id FROM tasks")
    found.tasks = len(tasks)
    per_directive = Counter(row.directive_id for row in tasks)
    for directive_id, sample in expected.accepted.items():
        want, got = expected.tasks_per_sample[sample], per_directive.get(directive_id, 0)
        if got < want:
            found.lost.append(f"directive {directive_id}: {got} of {want} tasks")
        elif got > want:
            found.duplicated.append(f"directive {directive_id}: {got} tasks, the rules say {want}")

    # Unit queues: one offer per task.
    offers.drain(stack.servers.rabbit.amqp_url, units)
    found.offers = sum(offers.per_task.values())
    task_ids = {row.id for row in tasks}
    found.lost += [f"task {t} never offered on its unit queue" for t in task_ids if offers.per_task[t] == 0]
    found.duplicated += [
        f"task {t} offered by {len(ids)} distinct messages"
        for t, ids in offers.envelopes.items()
        if len(ids) > 1
    ]
    found.copies = offers.copies()
    found.other += [f"offer for unknown task {t}" for t in offers.per_task if t not in task_ids]
    if offers.unreadable:
        found.other.append(f"{offers.unreadable} unreadable message(s) on the unit queues")

    # Archive: one record per file, one locked object version per record.
    attachments = _rows(urls["intake"], "SELECT id, directive_id, key FROM attachments")
    records = _rows(
        urls["archive"],
        "SELECT id, source_ref, bucket, key, version_id FROM records WHERE source_kind = 'attachment'",
    )
    found.records = len(records)
    per_attachment = Counter(row.source_ref for row in records)
    for attachment in attachments:
        n = per_attachment.get(attachment.id, 0)
        if n == 0:
            found.lost.append(f"file {attachment.id} of directive {attachment.directive_id} not archived")
        elif n > 1:
            found.duplicated.append(f"file {attachment.id} archived {n} times")
    for directive_id, files in expected.files.items():
        have = sum(1 for a in attachments if a.directive_id == directive_id)
        if directive_id in stored_ids and have != files:
            found.other.append(f"directive {directive_id}: {have} files stored, {files} sent")
    found.other += _check_versions(stack, records, retention=full)

    # The audit chain, as an auditor verifies it.
    verify = requests.get(
        f"{stack.url('archive')}/v1/audit/verify", headers=stack.auth("auditor"), timeout=120
    )
    if verify.status_code != 200 or not verify.json().get("ok"):
        found.other.append(f"audit chain does not verify: {verify.status_code} {verify.text[:300]}")
    else:
        found.audit_entries = int(verify.json().get("count", 0))

    # Dead letters anywhere.
    depths = queue_depths(stack.servers.rabbit.amqp_url, dead_letter_queues(units))
    found.dead_lettered = {q: n for q, n in depths.items() if n}

    # Staging uploads no attachment row refers to (a web worker killed between staging a file and committing
    # its directive leaves one). Intake's sweep removes them once older than its safe age: younger ones are
    # counted, older ones are a finding.
    referenced = {row.key for row in attachments}
    now = datetime.now(UTC)
    for obj in _s3(stack).list_objects(stack.staging_bucket, prefix=STAGING_PREFIX, recursive=True):
        if obj.object_name in referenced:
            continue
        age = (now - obj.last_modified).total_seconds() if obj.last_modified else 0.0
        if age > stack.orphan_seconds * 1.5:
            found.other.append(
                f"staging orphan {obj.object_name} left {age:.0f} s (sweep age {stack.orphan_seconds} s)"
            )
        else:
            found.young_orphans += 1
    return found


def _check_versions(stack: Stack, records: list[sa.Row[Any]], *, retention: bool) -> list[str]:
    """One object version per archived key, and that version under retention."""
    client = _s3(stack)
    problems: list[str] = []
    versions: Counter[str] = Counter()
    for obj in client.list_objects(stack.archive_bucket, recursive=True, include_version=True):
        if not obj.is_delete_marker:
            versions[obj.object_name] += 1
    for row in records:
        if versions.get(row.key, 0) != 1:
            problems.append(f"record {row.id}: {versions.get(row.key, 0)} object versions of {row.key}")
            continue
        if not retention:
            continue
        # The lock as a HEAD of that version reports it (moto answers GET ?retention with the object itself).
        head = client.stat_object(row.bucket, row.key, version_id=row.version_id)
        headers = {k.lower(): v for k, v in (head.metadata or {}).items()}
        if not headers.get("x-amz-object-lock-mode") and headers.get("x-amz-object-lock-legal-hold") != "ON":
            problems.append(f"record {row.id}: object {row.key} not under retention")
    return problems


def compare(before: Findings, after: Findings) -> Mapping[str, int]:
    """New problems since `before`: lost, duplicated, dead-lettered counts of this fault alone."""
    return {
        "lost": len(set(after.lost) - set(before.lost)),
        "duplicated": len(set(after.duplicated) - set(before.duplicated)),
        "dead_lettered": max(after.dead_letters - before.dead_letters, 0),
        "copies": max(after.copies - before.copies, 0),
    }
