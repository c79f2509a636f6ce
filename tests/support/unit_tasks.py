"""Units taking their tasks over routing's REST API (poll), as the end-to-end tests do."""

from __future__ import annotations

import time
from typing import Any

import requests


def tasks_by_unit(task_units: dict[str, str]) -> list[tuple[str, set[str]]]:
    """task id → unit code, turned into each unit's task ids, units in code order."""
    by_unit: dict[str, set[str]] = {}
    for task_id, unit in task_units.items():
        by_unit.setdefault(unit, set()).add(task_id)
    return sorted(by_unit.items())


def take_tasks(
    routing: str, unit: str, wanted: set[str], headers: dict[str, str], *, wait_seconds: int
) -> list[dict[str, Any]]:
    """The unit polls its queue until it was offered every task in `wanted` (30 s at most) and returns them
    in the order offered, leased; tasks not in `wanted` (other tests' directives) are passed over. Fails when
    a task is offered twice or never."""
    taken: list[dict[str, Any]] = []
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while wanted - seen and time.monotonic() < deadline:
        r = requests.post(
            f"{routing}/v1/units/{unit}/tasks:poll",
            json={"max": 10, "wait_seconds": wait_seconds},
            headers=headers,
            timeout=40,
        )
        assert r.status_code == 200, r.text
        for task in r.json()["items"]:
            if task["id"] in wanted:
                assert task["id"] not in seen, "a task was offered twice"
                seen.add(task["id"])
                taken.append(task)
    assert wanted == seen, f"{unit} never got {wanted - seen}"
    return taken
