"""The benchmark harness's statistics: percentiles, summaries over repeats, ratios and targets."""

from __future__ import annotations

import math

import pytest

from bench.stats import latency_percentiles, meets, percentile, ratio, summarize


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 25) == pytest.approx(17.5)


def test_percentile_does_not_depend_on_input_order() -> None:
    assert percentile([5.0, 1.0, 3.0], 50) == percentile([1.0, 3.0, 5.0], 50) == 3.0


def test_percentile_refuses_empty_input_and_out_of_range_q() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_has_median_spread_and_raw_values() -> None:
    summary = summarize([3, 1, 2, 10])
    assert summary.median == 2.5
    assert summary.min == 1 and summary.max == 10
    assert summary.p25 == pytest.approx(1.75)
    assert summary.p75 == pytest.approx(4.75)
    assert summary.n == 4
    assert summary.to_dict()["values"] == [3.0, 1.0, 2.0, 10.0]


def test_latency_percentiles_are_reported_in_milliseconds() -> None:
    out = latency_percentiles([0.001 * i for i in range(1, 101)])
    assert out["p50_ms"] == pytest.approx(50.5)
    assert out["p99_ms"] == pytest.approx(99.01)
    assert out["max_ms"] == pytest.approx(100.0)
    assert math.isnan(latency_percentiles([])["p99_ms"])


def test_ratio_is_none_without_a_usable_baseline() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(50.0, 0.0) is None
    assert ratio(None, 10.0) is None
    assert ratio(float("nan"), 10.0) is None


@pytest.mark.parametrize(
    ("value", "at_least", "below", "expected"),
    [
        (0.30, 0.25, None, True),
        (0.20, 0.25, None, False),
        (99.0, None, 100.0, True),
        (100.0, None, 100.0, False),
        (None, 0.25, None, None),
    ],
)
def test_meets_checks_each_stated_bound(
    value: float | None, at_least: float | None, below: float | None, expected: bool | None
) -> None:
    assert meets(value, at_least=at_least, below=below) is expected


def test_row5_puts_a_near_full_ledger_page_on_each_sampled_unit_at_both_sizes():
    from bench.row5_scale import PAGE, PER_DIRECTIVE, UNITS, holders

    assert holders(1_000_000) == UNITS and 1_000_000 // UNITS >= PAGE
    small = holders(1_000)
    assert small >= PER_DIRECTIVE  # a directive's tasks go to distinct units
    assert 1_000 // small >= 0.8 * PAGE  # 40 of a 50-row page
