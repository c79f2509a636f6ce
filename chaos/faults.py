"""The faults a run injects while directives are in flight: kill -9 of every process kind, a broker restart,
a broker connection cut mid-publish, PostgreSQL down and the object store unreachable with a backlog."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaos.servers import ServerError, wait_for
from chaos.stack import SERVICES

if TYPE_CHECKING:
    from chaos.run import Run

# Consumer queues that must hold a backlog when a dependency goes down: routing's and the archive's.
BACKLOG_QUEUES = ("routing.intake.directive_registered", "archive.intake.directive_registered")


@dataclass(frozen=True)
class Fault:
    """One fault: `inject` runs while the run's load is in flight and returns when the fault is lifted."""

    name: str
    what: str
    quick: bool
    inject: Callable[[Run], None]
    needs_proxy: str | None = None  # "broker" or "s3": the fault acts through that proxy
    backlog: bool = False  # the fault builds its own backlog before it strikes


def _kill_web_worker(service: str) -> Callable[[Run], None]:
    def inject(run: Run) -> None:
        pids = run.stack.web_worker_pids(service)
        if not pids:
            raise ServerError(f"no gunicorn worker of {service} to kill")
        run.note(f"kill -9 {service} gunicorn worker {pids[0]}")
        run.signal(pids[0], signal.SIGKILL)

    return inject


def _kill_worker(service: str) -> Callable[[Run], None]:
    def inject(run: Run) -> None:
        pid = run.stack.worker_pids()[service]
        run.note(f"kill -9 {service} worker {pid}")
        run.signal(pid, signal.SIGKILL)

    return inject


def _broker_restart(run: Run) -> None:
    run.note("restarting the RabbitMQ node")
    run.servers.rabbit.restart()


def _broker_cut(run: Run) -> None:
    proxy = run.servers.broker_proxy
    assert proxy is not None
    # Three cuts a second apart: each one lands on publishes in flight (relays, intake, routing).
    for _ in range(3):
        run.note("cutting every broker connection")
        proxy.cut()
        time.sleep(1.0)


def _with_backlog(run: Run, services: tuple[str, ...]) -> None:
    """Freezes the consumers of `services`, registers directives until each backlog queue holds at least
    `run.backlog` messages, then lets the consumers run again (into the outage the caller starts)."""
    frozen = [run.stack.signal_worker(service, signal.SIGSTOP) for service in services]
    run.note(f"froze the {' and '.join(services)} worker(s) to build a backlog of {run.backlog}")
    try:
        run.send_now(run.backlog)
        queues = [q for q in BACKLOG_QUEUES if q.split(".")[0] in services]
        wait_for(
            lambda: all(run.queue_messages(q) >= run.backlog for q in queues),
            timeout=120,
            what=f"a backlog of {run.backlog} in {', '.join(queues)}",
            interval=0.5,
        )
    except BaseException:
        for pid in frozen:
            run.signal(pid, signal.SIGCONT)
        raise
    run.frozen = frozen


def _release(run: Run) -> None:
    for pid in run.frozen:
        run.signal(pid, signal.SIGCONT)
    run.frozen = []


def _postgres_down(run: Run) -> None:
    _with_backlog(run, ("routing", "archive"))
    run.note(f"PostgreSQL down for {run.outage:.0f} s")
    run.servers.postgres.stop(mode="fast")
    _release(run)
    run.send_during_outage()
    run.hold(run.outage)
    run.servers.postgres.start()
    run.note("PostgreSQL back")


def _s3_unreachable(run: Run) -> None:
    proxy = run.servers.s3_proxy
    assert proxy is not None
    _with_backlog(run, ("archive",))
    run.note(f"object store unreachable for {run.outage:.0f} s")
    proxy.refuse()
    _release(run)
    run.send_during_outage()
    run.hold(run.outage)
    proxy.restore()
    run.note("object store reachable again")


FAULTS: tuple[Fault, ...] = (
    *(
        Fault(
            f"kill -9 {s} API worker", f"kill -9 of one of {s}'s gunicorn workers", True, _kill_web_worker(s)
        )
        for s in SERVICES
    ),
    *(
        Fault(f"kill -9 {s} worker", f"kill -9 of `python -m {s}.worker`", True, _kill_worker(s))
        for s in SERVICES
    ),
    Fault(
        "broker connection cut", "every broker connection cut mid-publish, 3×", True, _broker_cut, "broker"
    ),
    Fault("broker restart", "RabbitMQ node stopped and started", True, _broker_restart),
    Fault(
        "PostgreSQL down",
        "PostgreSQL stopped with a backlog, then started",
        False,
        _postgres_down,
        None,
        True,
    ),
    Fault(
        "object store unreachable",
        "S3 refused through the proxy with a backlog",
        False,
        _s3_unreachable,
        "s3",
        True,
    ),
)


def by_names(names: list[str], faults: tuple[Fault, ...] = FAULTS) -> list[Fault]:
    known = {fault.name: fault for fault in faults}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {list(known)}")
    return [known[name] for name in names]
