"""Pure statistics of the suite: percentiles, per-figure summaries over repeats, ratios and targets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    fraction = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


@dataclass(frozen=True)
class Summary:
    """One figure over its repeats: the median, the spread (p25/p75 and min/max) and the raw values."""

    median: float
    p25: float
    p75: float
    min: float
    max: float
    n: int
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = list(self.values)
        return out


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summary of no values")
    floats = tuple(float(v) for v in values)
    return Summary(
        median=float(statistics.median(floats)),
        p25=percentile(floats, 25),
        p75=percentile(floats, 75),
        min=min(floats),
        max=max(floats),
        n=len(floats),
        values=floats,
    )


def latency_percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """Per-request latencies (seconds) -> p50/p90/p99/max in milliseconds."""
    if not seconds:
        return {"p50_ms": math.nan, "p90_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    return {
        "p50_ms": percentile(seconds, 50) * 1000,
        "p90_ms": percentile(seconds, 90) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0 or math.isnan(value) or math.isnan(baseline):
        return None
    return value / baseline


def meets(value: float | None, *, at_least: float | None = None, below: float | None = None) -> bool | None:
    """Whether a figure meets its target (>= at_least and/or < below); None when it was not measured."""
    if value is None or math.isnan(value):
        return None
    if at_least is not None and value < at_least:
        return False
    return not (below is not None and value >= below)
