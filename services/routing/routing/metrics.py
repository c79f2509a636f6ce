"""The routing worker's Prometheus gauges: overdue tasks and task messages waiting, per unit."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Gauge

# "max" keeps the gauges meaningful if they are ever read from a multiprocess directory.
TASKS_OVERDUE = Gauge(
    "docroute_tasks_overdue",
    "Open tasks past their due time",
    ["unit"],
    multiprocess_mode="max",
)
TASK_QUEUE_DEPTH = Gauge(
    "docroute_task_queue_depth",
    "Task messages waiting in the unit's queue routing.tasks.<unit>",
    ["unit"],
    multiprocess_mode="max",
)


class UnitGauge:
    """Sets one per-unit gauge from a complete reading: units missing from it drop back to 0."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._seen: set[str] = set()

    def update(self, values: Mapping[str, int]) -> None:
        for unit in self._seen - set(values):
            self.gauge.labels(unit=unit).set(0)
        for unit, value in values.items():
            self.gauge.labels(unit=unit).set(value)
        self._seen |= set(values)
