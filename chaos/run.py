"""The fault run: private servers, `docroute up`, the seed, a steady load of directives, each fault in turn,
then waiting for the stack to heal by itself (or noting the operator step it took) and reconciling."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from chaos.client import CarefulClient, Load, Outcome
from chaos.faults import Fault
from chaos.reconcile import (
    Expectation,
    Findings,
    OfferLedger,
    compare,
    consumer_queues,
    dead_letter_queues,
    progress_counts,
    queue_depths,
    reconcile,
    settled,
)
from chaos.servers import ServerError
from chaos.stack import DOCROUTE, SERVICES, Servers, Stack
from chaos.workload import Workload

_t0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr; stdout stays for the table."""
    print(
        f"[chaos {time.strftime('%H:%M:%S')} +{time.monotonic() - _t0:6.1f}s] {message}",
        file=sys.stderr,
        flush=True,
    )


@dataclass
class Config:
    """How big a run is: directives sent during each fault, their pace, the outages' length and backlog."""

    faults: list[Fault]
    directives_per_fault: int = 24
    rate: float = 3.0
    outage: float = 60.0
    backlog: int = 25
    settle_timeout: float = 150.0
    # Without progress for this long while dead letters wait, the run acts as the operator would.
    stall_seconds: float = 15.0
    workdir: Path | None = None
    keep: bool = False


@dataclass
class Row:
    """One line of the table."""

    fault: str
    what: str
    status: str = "ok"  # ok | failed | not run
    sent: int = 0
    accepted: int = 0
    clients_saw: str = ""
    recover_seconds: float | None = None
    lost: int = 0
    duplicated: int = 0
    dead_lettered: int = 0
    copies: int = 0
    probes: str = ""
    operator: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return (
            self.status == "ok"
            and not (self.lost or self.duplicated or self.dead_lettered or self.operator)
            and self.recover_seconds is not None
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "whole": self.whole}


def clients_saw(outcomes: list[Outcome]) -> str:
    """e.g. `201×58, 503×12, connection error×3; slowest 201 after 14.2 s; 0 gave up`."""
    seen: Counter[str] = Counter()
    for outcome in outcomes:
        seen.update(outcome.seen)
    parts = [f"{k}×{v}" for k, v in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))]
    accepted = [o.seconds for o in outcomes if o.accepted]
    slowest = f"slowest 201 after {max(accepted):.1f} s" if accepted else "no 201"
    gave_up = sum(1 for o in outcomes if not o.accepted)
    return f"{', '.join(parts) or 'nothing'}; {slowest}; {gave_up} gave up"


class Prober:
    """Asks every API's /readyz twice a second from a fault's start until the stack has settled: what a
    load balancer would have seen. With several stacks (replicas) each API is named with its replica."""

    def __init__(self, stacks: list[Stack]) -> None:
        self._targets = {
            (service if len(stacks) == 1 else f"{service}#{index + 1}"): (stack, service)
            for index, stack in enumerate(stacks)
            for service in SERVICES
        }
        self._stop = threading.Event()
        self.seen: dict[str, Counter[str]] = {name: Counter() for name in self._targets}
        self._thread = threading.Thread(target=self._run, name="chaos-prober", daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            for name, (stack, service) in self._targets.items():
                try:
                    status = str(session.get(f"{stack.url(service)}/readyz", timeout=5).status_code)
                except requests.RequestException:
                    status = "connection error"
                    session = requests.Session()
                self.seen[name][status] += 1
            self._stop.wait(0.5)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> str:
        """e.g. `readyz intake 200×40; routing 200×39, connection error×1; archive 200×40`."""
        parts = []
        for name, seen in self.seen.items():
            counts = ", ".join(f"{k}×{v}" for k, v in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))
            parts.append(f"{name} {counts or 'nothing'}")
        return "readyz " + "; ".join(parts)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


class Run:
    """One fault run; use as a context manager so that everything it started is torn down."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.outage = config.outage
        self.backlog = config.backlog
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="docroute-chaos-"))
        self.servers: Servers
        self.stack: Stack
        self.workload = Workload()
        self.expected = Expectation()
        self.offers = OfferLedger()
        self.units: list[str] = []
        self.findings = Findings()
        self.frozen: list[int] = []
        self._notes: list[str] = []
        self._phase_outcomes: list[Outcome] = []
        self._started: list[str] = []
        self.stacks: list[Stack] = []
        self._turn = 0
        self._turn_lock = threading.Lock()

    # ---------------------------------------------------------------------------------- set-up / down

    def __enter__(self) -> Run:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def setup(self) -> None:
        self.start_servers()
        # Marked before it is up: an interruption while it starts must still stop what it started.
        self._started.append("stack")
        self.start_stacks()
        self.units = self.stack.load_seed()
        tasks = self.workload.learn_expected_tasks(self.stack.url("routing"), self.stack.auth("clerk"))
        self.expected.tasks_per_sample = tasks
        progress(f"seed loaded: {len(self.units)} units; tasks per sample directive {tasks}")
        token = self.stack.token("submitter")
        client = CarefulClient(self.intake_url, token)
        self.load = Load(client, senders=4)
        self.burst = Load(client, senders=4)

    def start_servers(self) -> None:
        progress(f"starting RabbitMQ, PostgreSQL and the S3 server under {self.workdir}")
        self._started.append("servers")
        self.servers = Servers.start(self.workdir / "servers")
        progress(
            f"RabbitMQ {self.servers.rabbit.name} :{self.servers.rabbit.amqp_port}, "
            f"PostgreSQL :{self.servers.postgres.port}, S3 :{self.servers.s3.port}; "
            f"services reach the broker via {self.servers.services_amqp_url} "
            f"and S3 via {self.servers.services_s3_endpoint}"
        )

    def start_stacks(self) -> None:
        """`docroute up` once: one process of each kind."""
        self.stack = Stack(
            servers=self.servers,
            workdir=self.workdir / "stack",
            trust_store=self.workload.write_trust_store(self.workdir / "trust.pem"),
        )
        self.stacks = [self.stack]
        progress(f"docroute up on ports {self.stack.base_port}-{self.stack.base_port + 2}")
        self.stack.up()

    def intake_url(self) -> str:
        """Where the next request goes: the stacks' intake APIs in turn, as a load balancer would."""
        with self._turn_lock:
            self._turn += 1
            return self.stacks[self._turn % len(self.stacks)].url("intake")

    def teardown(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(OSError):
                os.kill(pid, 18)  # SIGCONT: a frozen worker would not stop on SIGTERM
        for load in (getattr(self, "load", None), getattr(self, "burst", None)):
            if load is not None:
                load.close()
        if "stack" in self._started:
            progress("stopping docroute up")
            for stack in self.stacks:
                with contextlib.suppress(Exception):
                    stack.down()
        if "servers" in self._started and hasattr(self, "servers"):
            progress("stopping the servers")
            self.servers.close()
        if not self.config.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            progress(f"logs kept in {self.workdir}")

    # ------------------------------------------------------------------------------- used by faults

    def note(self, message: str) -> None:
        progress(message)
        self._notes.append(message)

    def signal(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def hold(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 10.0))
            if left > 10:
                progress(f"… {deadline - time.monotonic():.0f} s of the outage left")

    def send_now(self, count: int) -> None:
        """Registers `count` directives at once and waits for their answers."""
        self.burst.submit(self.workload.batch(count), rate=20.0)
        self._phase_outcomes += self.burst.wait()

    def send_during_outage(self) -> None:
        """More directives while the dependency is away: clients see what the outage looks like to them."""
        self.load.submit(self.workload.batch(self.config.directives_per_fault), rate=self.config.rate)

    def queue_messages(self, queue: str) -> int:
        """Messages in `queue`, ready or held unacknowledged by a (frozen) consumer."""
        return self.servers.rabbit.queue_messages().get(queue, 0)

    # ------------------------------------------------------------------------------------- a fault

    def run_fault(self, fault: Fault) -> Row:
        row = Row(fault=fault.name, what=fault.what)
        proxy = {"broker": self.servers.broker_proxy, "s3": self.servers.s3_proxy}.get(
            fault.needs_proxy or ""
        )
        if fault.needs_proxy and proxy is None:
            row.status = "not run"
            row.notes.append(f"no {fault.needs_proxy} proxy (chaos.proxy is missing)")
            return row
        progress(f"— {fault.name}: {fault.what}")
        before = self.findings
        self._notes, self._phase_outcomes = [], []
        count = self.config.directives_per_fault
        prober = Prober(self.stacks)
        with prober:
            self.load.submit(self.workload.batch(count), rate=self.config.rate)
            # Strike while the load is in flight: a third of the way into it.
            time.sleep(count / self.config.rate / 3)
            injected = time.monotonic()
            try:
                fault.inject(self)
            except Exception as exc:  # noqa: BLE001 - a fault not injected fails its row, not the run
                row.status = "failed"
                row.problems.append(f"injecting failed: {type(exc).__name__}: {exc}")
                progress(row.problems[-1])
                for pid in self.frozen:
                    self.signal(pid, 18)
                self.frozen = []
            lifted = time.monotonic()
            outcomes = self.load.wait() + self._phase_outcomes
            self.expected.add(outcomes)
            replayed = self.settle(row)
        row.sent = len(outcomes)
        row.accepted = sum(1 for o in outcomes if o.accepted)
        row.clients_saw = clients_saw(outcomes)
        row.probes = prober.summary()
        failures = [f"directive {o.submission.serial}: {o.error}" for o in outcomes if not o.accepted]
        row.problems += failures[:5]
        row.recover_seconds = (
            (time.monotonic() - (lifted if fault.backlog else injected)) if replayed is not None else None
        )
        if row.recover_seconds is None:
            row.problems.append(f"not settled within {self.config.settle_timeout:.0f} s")
        try:
            self.findings = self.reconcile()
        except Exception as exc:  # noqa: BLE001 - reported in the row; the next fault reconciles again
            row.status = "failed"
            row.problems.append(f"reconciling failed: {type(exc).__name__}: {exc}")
            return row
        delta = compare(before, self.findings)
        row.lost, row.duplicated = delta["lost"], delta["duplicated"]
        row.dead_lettered = max(delta["dead_lettered"], replayed or 0)
        row.copies = delta["copies"]
        row.problems += list(self.findings.lost + self.findings.duplicated + self.findings.other)[:10]
        row.notes += self._notes
        if row.sent and row.accepted < row.sent:
            row.status = "failed"
        progress(
            f"  {fault.name}: {row.accepted}/{row.sent} accepted; clients saw {row.clients_saw}; "
            f"recovered in {_seconds(row.recover_seconds)}; "
            f"lost {row.lost}, duplicated {row.duplicated}, dead-lettered {row.dead_lettered}, "
            f"operator: {'; '.join(row.operator) or 'none'}"
        )
        return row

    def settle(self, row: Row) -> int | None:
        """Waits until every accepted directive is routed and archived and the consumer queues are empty.

        Acts as an operator would when the stack does not heal by itself: restarts `docroute up` when it
        stopped, replays dead letters when nothing moves; each such step goes into `row.operator`. Answers
        the number of dead letters replayed (0 when none), or None when the stack did not settle in time."""
        replayed = 0
        deadline = time.monotonic() + self.config.settle_timeout
        last_counts: dict[str, int] = {}
        last_change = time.monotonic()
        queues = consumer_queues()
        while True:
            stopped = [stack for stack in self.stacks if not stack.alive()]
            if stopped:
                row.operator.append("restarted `docroute up`, which had stopped")
                progress("docroute up has stopped; restarting it as an operator would")
                stopped[0].up()
                continue
            try:
                counts = progress_counts(self.stack)
                done = (
                    settled(self.stack, self.expected)
                    and not any(queue_depths(self.servers.rabbit.amqp_url, queues).values())
                    and all(stack.workers_ready() for stack in self.stacks)
                )
            except Exception:  # noqa: BLE001 - a server still coming back: not settled yet
                counts, done = {}, False
            if done:
                return replayed
            if counts != last_counts:
                last_counts, last_change = counts, time.monotonic()
            stalled = time.monotonic() - last_change > self.config.stall_seconds
            if stalled:
                dead = {q: n for q, n in self._dead_letters().items() if n}
                if dead:
                    for queue, n in dead.items():
                        self._replay(queue)
                        row.operator.append(
                            f"`docroute dlq replay {queue.removesuffix('.dlq')}` ({n} message(s))"
                        )
                        replayed += n
                    last_change = time.monotonic()
            if time.monotonic() > deadline:
                return None
            time.sleep(1.0)

    def _dead_letters(self) -> dict[str, int | None]:
        try:
            return queue_depths(self.servers.rabbit.amqp_url, dead_letter_queues(self.units))
        except Exception:  # noqa: BLE001 - broker still restarting
            return {}

    def _replay(self, dlq: str) -> None:
        progress(f"replaying {dlq} as an operator would")
        env = self.stack.environ()
        env["DOCROUTE_AMQP_URL"] = self.servers.rabbit.amqp_url
        result = subprocess.run(  # noqa: S603 - our own CLI
            [str(DOCROUTE), "dlq", "replay", dlq.removesuffix(".dlq"), "--limit", "10000"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise ServerError(f"dlq replay {dlq}: {result.stdout}{result.stderr}")

    def reconcile(self, *, full: bool = False) -> Findings:
        """Checks the whole run so far (chaos.reconcile)."""
        return reconcile(self.stack, self.expected, self.offers, self.units, full=full)

    def final_check(self) -> Findings:
        """The last reconciliation of the whole run."""
        self.findings = self.reconcile(full=True)
        return self.findings
