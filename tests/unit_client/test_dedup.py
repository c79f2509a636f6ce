"""The remembered set of handed-on tasks: bounded, least recently used out first, durable in a state file."""

from __future__ import annotations

from pathlib import Path

import pytest
from docroute_unit.dedup import SeenTasks, StateFileError


def test_oldest_key_is_forgotten_beyond_capacity() -> None:
    seen = SeenTasks(capacity=3)
    for key in ("a", "b", "c", "d"):
        seen.add(key)
    assert "a" not in seen
    assert all(k in seen for k in ("b", "c", "d"))
    assert len(seen) == 3


def test_a_lookup_refreshes_a_key_so_it_outlives_newer_ones() -> None:
    seen = SeenTasks(capacity=2)
    seen.add("a")
    seen.add("b")
    assert "a" in seen
    seen.add("c")
    assert "a" in seen
    assert "b" not in seen


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "seen.jsonl"
    first = SeenTasks(capacity=10, path=path)
    first.add("task:Đồng-Xoài-1")
    first.close()
    second = SeenTasks(capacity=10, path=path)
    assert "task:Đồng-Xoài-1" in second
    assert "task:other" not in second


def test_a_torn_last_line_from_a_crash_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "seen.jsonl"
    path.write_text('"task:1"\n"task:2"\n"task:', encoding="utf-8")
    seen = SeenTasks(capacity=10, path=path)
    assert "task:1" in seen and "task:2" in seen
    assert len(seen) == 2


def test_journal_is_compacted_and_keeps_the_latest_keys(tmp_path: Path) -> None:
    path = tmp_path / "seen.jsonl"
    seen = SeenTasks(capacity=5, path=path)
    for i in range(40):
        seen.add(f"task:{i}")
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 11
    seen.close()
    reopened = SeenTasks(capacity=5, path=path)
    assert [f"task:{i}" in reopened for i in range(34, 40)] == [False] + [True] * 5


def test_two_clients_cannot_share_one_state_file(tmp_path: Path) -> None:
    path = tmp_path / "seen.jsonl"
    holder = SeenTasks(path=path)
    with pytest.raises(StateFileError, match="in use"):
        SeenTasks(path=path)
    holder.close()
    SeenTasks(path=path).close()


def test_unwritable_state_file_location_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateFileError):
        SeenTasks(path=blocker / "seen.jsonl")
