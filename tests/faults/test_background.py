"""chaos.background: a fault run in a thread of its own hands back its rows or its error, and whoever closes
it returns only once the run is torn down (the fault tests' outages stop side by side at the module's end)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

import chaos.background
from chaos.background import BackgroundRun
from chaos.faults import by_names
from chaos.run import Row


class FakeRun:
    """What BackgroundRun drives of a Run: setup, run_fault, teardown (which a test can hold)."""

    fail_setup: ClassVar[bool] = False
    instances: ClassVar[list[FakeRun]] = []

    def __init__(self, config: Any) -> None:
        self.config = config
        self.release_teardown = threading.Event()
        self.teardown_started = threading.Event()
        self.torn_down = 0
        FakeRun.instances.append(self)

    def setup(self) -> None:
        if FakeRun.fail_setup:
            raise RuntimeError("no RabbitMQ today")

    def run_fault(self, fault: Any) -> Row:
        return Row(fault=fault.name, what=fault.what)

    def teardown(self) -> None:
        self.teardown_started.set()
        assert self.release_teardown.wait(10)
        self.torn_down += 1


@pytest.fixture(autouse=True)
def fake_run(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeRun.fail_setup = False
    FakeRun.instances = []
    monkeypatch.setattr(chaos.background, "Run", FakeRun)


def test_the_rows_of_its_faults_come_back_in_order() -> None:
    faults = by_names(["PostgreSQL down", "object store unreachable"])
    background = BackgroundRun("two-outages", config=None, faults=faults)  # type: ignore[arg-type]
    assert [row.fault for row in background.rows(timeout=10)] == [
        "PostgreSQL down",
        "object store unreachable",
    ]
    FakeRun.instances[0].release_teardown.set()
    background.close(timeout=10)
    assert FakeRun.instances[0].torn_down == 1


def test_a_failed_set_up_is_raised_to_whoever_asks_for_the_rows() -> None:
    FakeRun.fail_setup = True
    background = BackgroundRun("broken", config=None, faults=by_names(["PostgreSQL down"]))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no RabbitMQ today"):
        background.rows(timeout=10)
    FakeRun.instances[0].release_teardown.set()
    background.close(timeout=10)


def test_a_second_close_returns_only_once_the_first_has_torn_the_run_down() -> None:
    background = BackgroundRun("outage", config=None, faults=by_names(["PostgreSQL down"]))  # type: ignore[arg-type]
    background.rows(timeout=10)
    run = FakeRun.instances[0]
    first = background.close_in_background()
    assert run.teardown_started.wait(10)
    second = background.close_in_background()
    second.join(0.3)
    assert second.is_alive(), "the second close returned while the run was still being torn down"
    run.release_teardown.set()
    first.join(10)
    second.join(10)
    assert not first.is_alive() and not second.is_alive()
    assert run.torn_down == 1
