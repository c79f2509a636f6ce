"""Row 1: directives registered per second by intake (one 100 KB PDF each), p50/p99 latency at 1, 8 and
32 clients, on PostgreSQL with the filesystem store and with the S3 server; baseline: a bare Flask app."""

from __future__ import annotations

import itertools
from typing import Any

from bench.context import Context
from bench.harness import ROOT, RssSampler, base_environ, migrate, progress, token
from bench.load import LoadResult, Request, closed_loop
from bench.payloads import directive_body, numbered, pdf_of_size, sample_directives
from bench.report import Figure, RowResult
from bench.stats import latency_percentiles, summarize

TITLE = "intake: directives registered per second (one 100 KB PDF each)"
CLIENTS = (1, 8, 32)
PDF_SIZE = 100 * 1024
# Far above any sample's number, so the bench's numbers never collide with real ones in a shared DB.
SERIAL_START = 1_000_000


class Submissions:
    """Builds POST /v1/directives requests: a new number every time, the same 100 KB PDF."""

    def __init__(self, bearer: str | None) -> None:
        self.samples = sample_directives()
        self.pdf = pdf_of_size(PDF_SIZE)
        self.serials = itertools.count(SERIAL_START)
        self.bearer = bearer

    def __call__(self, client: int, n: int) -> Request:
        serial = next(self.serials)
        metadata = numbered(self.samples[serial % len(self.samples)], serial)
        body, content_type = directive_body(metadata, self.pdf)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        return Request("POST", "/v1/directives", body, headers)


def _measure(base_url: str, make: Submissions, clients: int, *, duration: float, warmup: float) -> LoadResult:
    result = closed_loop(base_url, make, clients=clients, duration=duration, warmup=warmup, expect=201)
    if result.failed:
        raise RuntimeError(
            f"{result.failed} of {result.ok + result.failed} requests failed at {clients} clients "
            f"(statuses {result.statuses}); first: {result.first_error}"
        )
    return result


def _round(result: LoadResult) -> dict[str, Any]:
    return {"throughput": result.throughput, "requests": result.ok, **latency_percentiles(result.latencies)}


def run(ctx: Context) -> RowResult:
    row = RowResult("1", TITLE)
    duration, warmup = (2.0, 0.5) if ctx.quick else (8.0, 2.0)
    repeats = ctx.repeats(3)
    amqp = ctx.infra.vhost()
    pg = ctx.infra.database("intake")
    progress("row 1: migrating a fresh intake database")
    migrate("intake", pg)
    env = base_environ(
        data_dir=ctx.scratch("intake-fs"),
        amqp_url=amqp,
        jwt_secret=ctx.jwt_secret,
        database_urls={"intake": pg},
    )
    intake = ctx.launcher.service("intake", env)
    baseline = ctx.launcher.gunicorn(
        "baseline",
        conf=ROOT / "bench" / "baseline_gunicorn.conf.py",
        app="bench.baseline_app:create_app()",
        env=env,
    )
    bearer = token(ctx.jwt_secret, "submitter")
    make_intake, make_baseline = Submissions(bearer), Submissions(None)
    rounds: dict[str, dict[int, list[dict[str, Any]]]] = {"intake_fs": {}, "baseline": {}, "intake_s3": {}}
    sampler = RssSampler()
    sampler.watch(intake, "intake (gunicorn master+workers)")
    sampler.watch(baseline, "baseline app (gunicorn master+workers)")
    with sampler:
        for clients in CLIENTS:
            for repeat in range(repeats):
                # Interleaved, so a drift of the machine (cache, disk) hits both sides alike.
                for name, url, make in (
                    ("baseline", baseline.base_url, make_baseline),
                    ("intake_fs", intake.base_url, make_intake),
                ):
                    assert url is not None
                    result = _measure(url, make, clients, duration=duration, warmup=warmup)
                    rounds[name].setdefault(clients, []).append(_round(result))
                    progress(
                        f"row 1: {name:9} {clients:2} clients, repeat {repeat + 1}/{repeats}: "
                        f"{result.throughput:7.1f}/s, "
                        f"p99 {latency_percentiles(result.latencies)['p99_ms']:.0f} ms"
                    )
    ctx.record_memory(sampler, "1")
    baseline.stop()

    progress("row 1: intake with the S3 server (moto) as its store")
    pg_s3 = ctx.infra.database("intake_s3")
    migrate("intake", pg_s3)
    env_s3 = base_environ(
        data_dir=ctx.scratch("intake-s3"),
        amqp_url=amqp,
        jwt_secret=ctx.jwt_secret,
        database_urls={"intake": pg_s3},
        s3_endpoint=ctx.infra.s3(),
    )
    intake_s3 = ctx.launcher.service("intake", env_s3)
    assert intake_s3.base_url is not None
    for clients in CLIENTS:
        for repeat in range(ctx.repeats(2)):
            result = _measure(
                intake_s3.base_url, make_intake, clients, duration=duration * 0.75, warmup=warmup
            )
            rounds["intake_s3"].setdefault(clients, []).append(_round(result))
            progress(f"row 1: intake_s3 {clients:2} clients, repeat {repeat + 1}: {result.throughput:7.1f}/s")
    intake_s3.stop()
    intake.stop()

    for clients in CLIENTS:
        fs, base, s3 = rounds["intake_fs"][clients], rounds["baseline"][clients], rounds["intake_s3"][clients]
        row.figures.append(
            Figure(
                row="1",
                name=f"directives/s, {clients} client(s), PostgreSQL + filesystem store",
                unit="/s",
                value=summarize([r["throughput"] for r in fs]),
                baseline=summarize([r["throughput"] for r in base]),
                baseline_name="bare Flask",
                target=">= 25% of baseline",
                at_least_ratio=0.25,
            )
        )
        row.figures.append(
            Figure(
                row="1",
                name=f"p50 latency, {clients} client(s)",
                unit="ms",
                value=summarize([r["p50_ms"] for r in fs]),
                baseline=summarize([r["p50_ms"] for r in base]),
                baseline_name="bare Flask",
            )
        )
        row.figures.append(
            Figure(
                row="1",
                name=f"p99 latency, {clients} client(s)",
                unit="ms",
                value=summarize([r["p99_ms"] for r in fs]),
                baseline=summarize([r["p99_ms"] for r in base]),
                baseline_name="bare Flask",
                target="< 100 ms" if clients == 8 else "—",
                below=100.0 if clients == 8 else None,
            )
        )
        row.figures.append(
            Figure(
                row="1",
                name=f"directives/s, {clients} client(s), S3 server (moto, test double)",
                unit="/s",
                value=summarize([r["throughput"] for r in s3]),
                note="moto is a test double, not a performance reference",
            )
        )
    row.details = {"rounds": rounds, "duration_s": duration, "warmup_s": warmup, "pdf_bytes": PDF_SIZE}
    row.notes.append(
        f"Closed loop: each client (a thread, keep-alive http.client) sends the next POST /v1/directives "
        f"(multipart: metadata JSON + one {PDF_SIZE // 1024} KB PDF, a new document number each time) "
        "as soon "
        f"as the previous answered 201; {duration:.0f} s measured after {warmup:.0f} s warm-up, {repeats} "
        "repeat(s), baseline and intake interleaved. The client runs on the same 2 cores as the server."
    )
    row.notes.append(
        "Intake runs its gunicorn only (2 workers x 4 threads, the shipped settings); "
        "its outbox relay is not "
        "running, so the figure is the API's registration rate. Baseline: bench/baseline_app.py, which "
        "parses the same multipart body and answers 201 JSON, on the same gunicorn settings."
    )
    return row
