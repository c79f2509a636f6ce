"""Keeps `docroute up`'s children running: restarts the dead with capped backoff, gives up on crash loops."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("docroute.supervisor")


@dataclass(frozen=True)
class ChildSpec:
    """One child process: a name for the logs, its command line and its environment."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


class Process(Protocol):
    """What the supervisor uses of a started process (subprocess.Popen has it; the unit tests fake it)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


Launch = Callable[[ChildSpec], Process]


class StopRequest(Protocol):
    """What `run` polls: a threading.Event, or shared.runtime.SignalFlag (safe to set from a signal)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


def popen(spec: ChildSpec) -> Process:
    """Starts the child with our stdout and stderr, in our process group (so Ctrl-C reaches it too)."""
    return subprocess.Popen(list(spec.argv), env=dict(spec.env))  # noqa: S603 - argv built by docroute itself


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead child and when to stop trying.

    A death within `startup_window` seconds of the child's start is a failed start; `max_failed_starts` of
    them in a row (the child never stayed up for the window in between) means it cannot start - a port in
    use, a bad setting, a server that refuses it - and restarting it forever would only hide that. A child
    that ran longer than the window is restarted after `initial_delay`; each failed start doubles the delay,
    up to `max_delay`. The window is generous because a Python worker on a busy two-core host has been seen
    to need 10-20 s just to import and connect.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    startup_window: float = 30.0
    max_failed_starts: int = 5

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 < initial_delay <= max_delay")
        if self.startup_window <= 0 or self.max_failed_starts < 1:
            raise ValueError("need a positive startup_window and max_failed_starts >= 1")

    def delay(self, failed_starts: int) -> float:
        """Seconds to wait before the next start, given the failed starts in a row so far."""
        return float(min(self.max_delay, self.initial_delay * 2 ** max(0, failed_starts - 1)))


def describe_exit(returncode: int) -> str:
    """'exit 3' or 'killed by SIGKILL' (Popen gives -N for a death by signal N)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


class _NeverStarted:
    """Stands for a launch that raised: it has already 'exited' with 127, as a shell reports it."""

    pid = 0

    def poll(self) -> int | None:
        return 127

    def terminate(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def send_signal(self, sig: int) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        return 127


@dataclass
class _Slot:
    spec: ChildSpec
    process: Process | None = None
    started_at: float = 0.0
    failed_starts: int = 0
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts every child, restarts the ones that die, and stops them all on request or on a crash loop.

    `check()` is one round (reap the dead, start those whose delay is over) and is what the unit tests drive
    with a fake clock and fake processes; `run()` loops over it until a stop event or a give-up.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        launch: Launch = popen,
        clock: Callable[[], float] = time.monotonic,
        policy: RestartPolicy | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self._slots = [_Slot(spec) for spec in specs]
        self._launch = launch
        self._clock = clock
        self.policy = policy or RestartPolicy()
        self.failure: str | None = None

    @property
    def pids(self) -> dict[str, int | None]:
        """The current pid of each child (None while it waits to be restarted)."""
        return {slot.spec.name: slot.process.pid if slot.process else None for slot in self._slots}

    def restarts(self, name: str) -> int:
        return next(slot.restarts for slot in self._slots if slot.spec.name == name)

    def start(self) -> None:
        for slot in self._slots:
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        slot.started_at = self._clock()
        try:
            slot.process = self._launch(slot.spec)
        except OSError as exc:
            # No process at all (fork refused, executable gone): a failed start like any other.
            log.error("could not start %s: %s", slot.spec.name, exc, extra={"child": slot.spec.name})
            slot.process = _NeverStarted()
            return
        log.info(
            "started %s (pid %s)",
            slot.spec.name,
            slot.process.pid,
            extra={"child": slot.spec.name, "pid": slot.process.pid, "restarts": slot.restarts},
        )

    def check(self) -> bool:
        """One round; False once a child keeps failing to start (then `failure` says why)."""
        now = self._clock()
        for slot in self._slots:
            if slot.process is not None:
                returncode = slot.process.poll()
                if returncode is None:
                    continue
                if not self._reap(slot, returncode, now):
                    return False
            if slot.restart_at is not None and now >= slot.restart_at:
                slot.restarts += 1
                self._start(slot)
        return True

    def _reap(self, slot: _Slot, returncode: int, now: float) -> bool:
        assert slot.process is not None
        pid = slot.process.pid
        slot.process = None
        lived = now - slot.started_at
        if lived < self.policy.startup_window:
            slot.failed_starts += 1
        else:
            slot.failed_starts = 0
        status = describe_exit(returncode)
        fields = {
            "child": slot.spec.name,
            "pid": pid,
            "exit_code": returncode if returncode >= 0 else None,
            "signal": signal.Signals(-returncode).name if -returncode in signal.valid_signals() else None,
            "lived_seconds": round(lived, 3),
            "failed_starts": slot.failed_starts,
        }
        if slot.failed_starts >= self.policy.max_failed_starts:
            self.failure = (
                f"{slot.spec.name} died {slot.failed_starts} times in a row within "
                f"{self.policy.startup_window:g} s of starting (last: {status}); giving up"
            )
            log.error(self.failure, extra=fields)
            return False
        delay = self.policy.delay(slot.failed_starts)
        slot.restart_at = now + delay
        log.warning(
            "%s (pid %s) died: %s after %.1f s; restart %d in %.1f s",
            slot.spec.name,
            pid,
            status,
            lived,
            slot.restarts + 1,
            delay,
            extra={**fields, "attempt": slot.restarts + 1, "delay_seconds": delay},
        )
        return True

    def run(self, stop: StopRequest, *, poll_interval: float = 0.2, stop_timeout: float = 30.0) -> int:
        """Starts the children and keeps them up until `stop` is set (exit code 0) or a give-up (1).

        Either way every child is stopped before returning: SIGTERM; SIGABRT/SIGKILL after `stop_timeout`.
        """
        self.start()
        healthy = True
        try:
            # Polling keeps the main thread free to run the signal handlers that set `stop`.
            while not stop.is_set():
                healthy = self.check()
                if not healthy:
                    break
                stop.wait(poll_interval)
            if healthy:
                log.info("stop requested; stopping every child")
        finally:
            self.stop_all(stop_timeout)
        return 0 if healthy else 1

    def stop_all(self, timeout: float) -> None:
        """SIGTERM to every running child, then waits; SIGABRT, then SIGKILL, for those that overstay."""
        running = [slot for slot in self._slots if slot.process is not None]
        for slot in running:
            assert slot.process is not None
            if slot.process.poll() is None:
                slot.process.terminate()
        deadline = self._clock() + timeout
        for slot in running:
            assert slot.process is not None
            try:
                slot.process.wait(timeout=max(0.1, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop in %.0f s; aborting it (a Python child prints where each thread was)",
                    slot.spec.name,
                    timeout,
                    extra={"child": slot.spec.name, "pid": slot.process.pid},
                )
                slot.process.send_signal(signal.SIGABRT)
                try:
                    slot.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    slot.process.kill()
                    slot.process.wait()
            slot.process = None
        for slot in self._slots:
            slot.restart_at = None
