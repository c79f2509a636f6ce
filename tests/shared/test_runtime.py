"""run_all: workers run in threads and stop together, on the stop event, a signal or a failure."""

import os
import signal
import threading
import time

import pytest
from shared.runtime import WorkerFailed, run_all


class LoopWorker:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped_cleanly = False

    def run(self, stop: threading.Event) -> None:
        self.started.set()
        while not stop.wait(0.01):
            pass
        self.stopped_cleanly = True


class FailingWorker:
    def __init__(self, after: threading.Event) -> None:
        self.after = after

    def run(self, stop: threading.Event) -> None:
        self.after.wait(5)
        raise RuntimeError("relay broke")


def test_stop_event_stops_every_worker():
    workers = [LoopWorker(), LoopWorker()]
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    run_all(workers, stop)
    assert time.monotonic() - t0 < 2
    assert all(w.stopped_cleanly for w in workers)


def test_one_failure_stops_the_others_and_is_raised():
    loop = LoopWorker()
    failing = FailingWorker(loop.started)
    with pytest.raises(WorkerFailed, match="relay broke") as info:
        run_all([loop, failing], threading.Event())
    assert isinstance(info.value.__cause__, RuntimeError)
    assert loop.stopped_cleanly


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_workers_and_restores_the_handler(sig):
    previous = signal.getsignal(sig)
    worker = LoopWorker()

    def send() -> None:
        worker.started.wait(5)
        os.kill(os.getpid(), sig)

    threading.Thread(target=send).start()
    run_all([worker])
    assert worker.stopped_cleanly
    assert signal.getsignal(sig) is previous


def test_outside_the_main_thread_no_signal_handler_is_installed():
    errors = []
    stop = threading.Event()

    def body() -> None:
        try:
            run_all([LoopWorker()], stop)
        except Exception as exc:  # noqa: BLE001 - ValueError if it tried signal.signal off the main thread
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    time.sleep(0.05)
    stop.set()
    t.join(5)
    assert not t.is_alive()
    assert errors == []


def test_a_metrics_port_in_use_stops_the_worker_with_one_line(monkeypatch, capsys):
    import socket
    from types import SimpleNamespace

    from shared.runtime import worker_main

    built = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("DOCROUTE_METRICS_PORT", str(port))
        settings = SimpleNamespace(common=SimpleNamespace(log_level="INFO"))
        with pytest.raises(SystemExit) as exit_info:
            worker_main("intake", lambda: settings, lambda s: built.append(s))
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"intake worker: DOCROUTE_METRICS_PORT: cannot listen on {port}: ")
    assert "in use" in line
    assert built == []  # nothing was built or started


def test_a_signal_while_the_stop_lock_is_held_does_not_hang_the_process():
    """A handler runs in the main thread between two bytecodes, maybe while that thread holds the stop
    Event's (non-reentrant) lock: inside Event.wait, or inside the set() of a first signal when a second
    one arrives (Ctrl-C and the supervisor's SIGTERM at once). Calling the installed handler with that lock
    held reproduces it: a handler that set the Event itself waited for its own lock for ever."""
    handled = threading.Event()

    class HoldsTheLock:
        def run(self, stop: threading.Event) -> None:
            handler = signal.getsignal(signal.SIGTERM)
            with stop._cond:  # type: ignore[attr-defined]  # what Event.set/Event.wait hold
                handler(signal.SIGINT, None)
                handler(signal.SIGTERM, None)
            handled.set()
            stop.wait(10)

    started = time.monotonic()
    run_all([HoldsTheLock()])
    assert handled.is_set()
    assert time.monotonic() - started < 5


def test_signal_flag_records_without_locks_and_restores_handlers():
    from shared.runtime import SignalFlag

    flag = SignalFlag()
    previous = flag.install()
    try:
        assert signal.getsignal(signal.SIGTERM) is flag and not flag.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not flag.wait(0.01):
            assert time.monotonic() < deadline
        assert flag.name() == "SIGTERM"
    finally:
        SignalFlag.restore(previous)
    assert signal.getsignal(signal.SIGTERM) is previous[signal.SIGTERM]
