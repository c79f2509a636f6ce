"""The supervisor of `docroute up`, on fake processes and a fake clock: restarts, backoff, give-up, stop."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading

import pytest

from docroute.supervisor import ChildSpec, RestartPolicy, Supervisor, describe_exit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """A child that runs until the test makes it die, or until terminate() (unless it ignores SIGTERM)."""

    def __init__(self, pid: int, *, ignores_term: bool = False, ignores_abort: bool = False) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.ignores_term = ignores_term
        self.ignores_abort = ignores_abort
        self.signals: list[int] = []
        self.terminated = False
        self.killed = False

    def poll(self) -> int | None:
        return self.returncode

    def die(self, returncode: int) -> None:
        self.returncode = returncode

    def terminate(self) -> None:
        self.terminated = True
        if not self.ignores_term:
            self.returncode = -15

    def kill(self) -> None:
        self.killed = True
        self.returncode = -9

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGABRT and not self.ignores_abort:
            self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("fake", timeout or 0)
        return self.returncode


class FakeLauncher:
    def __init__(self, *, ignores_term: bool = False, ignores_abort: bool = False) -> None:
        self.started: dict[str, list[FakeProcess]] = {}
        self.next_pid = 100
        self.ignores_term = ignores_term
        self.ignores_abort = ignores_abort

    def __call__(self, spec: ChildSpec) -> FakeProcess:
        self.next_pid += 1
        process = FakeProcess(self.next_pid, ignores_term=self.ignores_term, ignores_abort=self.ignores_abort)
        self.started.setdefault(spec.name, []).append(process)
        return process

    def current(self, name: str) -> FakeProcess:
        return self.started[name][-1]


SPECS = [
    ChildSpec("intake-api", ("gunicorn",)),
    ChildSpec("intake-worker", ("python", "-m", "intake.worker")),
]
POLICY = RestartPolicy(initial_delay=0.5, max_delay=4.0, startup_window=10.0, max_failed_starts=4)


def make(launcher: FakeLauncher, clock: FakeClock, policy: RestartPolicy = POLICY) -> Supervisor:
    supervisor = Supervisor(SPECS, launch=launcher, clock=clock, policy=policy)
    supervisor.start()
    return supervisor


def test_a_dead_child_is_restarted_after_the_delay_and_the_others_keep_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, launcher = FakeClock(), FakeLauncher()
    supervisor = make(launcher, clock)
    api = launcher.current("intake-api")
    clock.advance(60)
    launcher.current("intake-worker").die(-9)

    with caplog.at_level(logging.INFO, logger="docroute.supervisor"):
        assert supervisor.check()
        assert supervisor.pids["intake-worker"] is None  # waiting for its delay
        clock.advance(0.4)
        assert supervisor.check()
        assert len(launcher.started["intake-worker"]) == 1
        clock.advance(0.1)
        assert supervisor.check()

    assert len(launcher.started["intake-worker"]) == 2
    assert supervisor.pids["intake-worker"] == launcher.current("intake-worker").pid
    assert launcher.current("intake-api") is api and not api.terminated
    assert supervisor.restarts("intake-worker") == 1
    died = next(r for r in caplog.records if "died" in r.getMessage())
    assert "intake-worker" in died.getMessage() and "killed by SIGKILL" in died.getMessage()
    assert (died.child, died.signal, died.attempt, died.delay_seconds) == ("intake-worker", "SIGKILL", 1, 0.5)  # type: ignore[attr-defined]
    started = [r for r in caplog.records if r.getMessage().startswith("started intake-worker")]
    assert started and started[-1].pid == supervisor.pids["intake-worker"]  # type: ignore[attr-defined]


def test_failed_starts_back_off_exponentially_up_to_the_cap_then_give_up() -> None:
    clock, launcher = FakeClock(), FakeLauncher()
    policy = RestartPolicy(initial_delay=0.5, max_delay=2.0, startup_window=10.0, max_failed_starts=5)
    supervisor = make(launcher, clock, policy)
    delays = []
    for _ in range(4):
        clock.advance(1)
        launcher.current("intake-worker").die(1)
        assert supervisor.check()
        before = clock.now
        while supervisor.pids["intake-worker"] is None:
            clock.advance(0.25)
            assert supervisor.check()
        delays.append(clock.now - before)
    assert delays == [0.5, 1.0, 2.0, 2.0]  # doubled each time, capped at max_delay

    clock.advance(1)
    launcher.current("intake-worker").die(1)
    assert not supervisor.check()
    assert supervisor.failure is not None
    assert "intake-worker died 5 times in a row within 10 s of starting (last: exit 1)" in supervisor.failure


def test_a_child_that_stayed_up_past_the_window_starts_counting_again() -> None:
    clock, launcher = FakeClock(), FakeLauncher()
    supervisor = make(launcher, clock)
    for _ in range(3):  # three failed starts: one short of giving up
        clock.advance(1)
        launcher.current("intake-worker").die(1)
        assert supervisor.check()
        clock.advance(10)
        assert supervisor.check()
    clock.advance(30)  # this one runs well
    launcher.current("intake-worker").die(-9)
    assert supervisor.check()
    clock.advance(0.5)  # a death after a good run waits only the initial delay
    assert supervisor.check()
    for _ in range(3):  # and three more failed starts still do not give up
        clock.advance(1)
        launcher.current("intake-worker").die(1)
        assert supervisor.check()
        clock.advance(10)
        assert supervisor.check()
    assert supervisor.failure is None
    assert supervisor.restarts("intake-worker") == 7


def test_run_stops_every_child_when_asked_and_returns_zero() -> None:
    clock, launcher = FakeClock(), FakeLauncher()
    supervisor = Supervisor(SPECS, launch=launcher, clock=clock, policy=POLICY)
    stop = threading.Event()
    stop.set()
    assert supervisor.run(stop, poll_interval=0.01) == 0
    assert all(p.terminated and not p.killed for procs in launcher.started.values() for p in procs)
    assert supervisor.pids == {"intake-api": None, "intake-worker": None}


def test_run_gives_up_with_exit_one_and_stops_the_healthy_children() -> None:
    clock, launcher = FakeClock(), FakeLauncher()
    policy = RestartPolicy(initial_delay=0.01, max_delay=0.01, startup_window=60.0, max_failed_starts=2)

    class Crashing(FakeLauncher):
        def __call__(self, spec: ChildSpec) -> FakeProcess:
            process = super().__call__(spec)
            if spec.name == "intake-worker":
                process.die(2)
            return process

    launcher = Crashing()
    supervisor = Supervisor(SPECS, launch=launcher, clock=clock, policy=policy)
    stop = threading.Event()
    original_check = supervisor.check

    def check_and_tick() -> bool:
        clock.advance(0.02)
        return original_check()

    supervisor.check = check_and_tick  # type: ignore[method-assign]
    assert supervisor.run(stop, poll_interval=0.001) == 1
    assert len(launcher.started["intake-worker"]) == 2
    assert launcher.current("intake-api").terminated
    assert supervisor.failure is not None and "intake-worker" in supervisor.failure


def test_a_child_that_overstays_sigterm_is_aborted_so_it_shows_where_it_hung() -> None:
    clock, launcher = FakeClock(), FakeLauncher(ignores_term=True)
    supervisor = make(launcher, clock)
    supervisor.stop_all(timeout=5)
    processes = [p for procs in launcher.started.values() for p in procs]
    assert all(p.terminated and p.signals == [signal.SIGABRT] and not p.killed for p in processes)


def test_a_child_that_survives_the_abort_too_is_killed() -> None:
    clock, launcher = FakeClock(), FakeLauncher(ignores_term=True, ignores_abort=True)
    supervisor = make(launcher, clock)
    supervisor.stop_all(timeout=5)
    assert all(p.killed for procs in launcher.started.values() for p in procs)


def test_nothing_is_restarted_once_stopping() -> None:
    clock, launcher = FakeClock(), FakeLauncher()
    supervisor = make(launcher, clock)
    launcher.current("intake-worker").die(-2)  # Ctrl-C reached the child before us
    assert supervisor.check()
    supervisor.stop_all(timeout=1)
    clock.advance(60)
    assert supervisor.check()
    assert len(launcher.started["intake-worker"]) == 1


def test_a_launch_that_raises_counts_as_a_failed_start() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def launch(spec: ChildSpec) -> FakeProcess:
        calls.append(spec.name)
        if spec.name == "intake-worker":
            raise FileNotFoundError("no such interpreter")
        return FakeProcess(len(calls))

    policy = RestartPolicy(initial_delay=0.5, max_delay=0.5, startup_window=10.0, max_failed_starts=2)
    supervisor = Supervisor(SPECS, launch=launch, clock=clock, policy=policy)
    supervisor.start()
    assert supervisor.check()
    clock.advance(0.5)
    assert supervisor.check()  # restarted, raised again
    assert not supervisor.check()
    assert supervisor.failure is not None and "(last: exit 127)" in supervisor.failure
    assert calls.count("intake-worker") == 2


def test_exit_descriptions() -> None:
    assert describe_exit(3) == "exit 3"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(initial_delay=0)
    with pytest.raises(ValueError):
        RestartPolicy(max_failed_starts=0)
    with pytest.raises(ValueError):
        Supervisor([SPECS[0], SPECS[0]])
