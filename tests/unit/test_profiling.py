"""The timing loop and its statistics, with fake workloads (no timing asserts on durations)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgekd.profiling import LatencyStats, summarize, time_runs


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_summarize_matches_numpy_percentiles() -> None:
    samples_ns = [1_000_000, 2_000_000, 3_000_000, 4_000_000, 10_000_000]
    stats = summarize(samples_ns)
    ms = np.array(samples_ns) / 1e6
    assert stats.p50_ms == pytest.approx(np.percentile(ms, 50)) == pytest.approx(3.0)
    assert stats.p90_ms == pytest.approx(np.percentile(ms, 90))
    assert stats.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert stats.p90_ms == pytest.approx(4.0 + 0.6 * 6.0)  # linear interpolation
    assert stats.mean_ms == pytest.approx(4.0)
    assert stats.std_ms == pytest.approx(ms.std())
    assert (stats.min_ms, stats.max_ms, stats.runs) == (1.0, 10.0, 5)
    assert stats.outliers == 0


def test_summarize_counts_outliers_beyond_three_sigma_without_dropping_them() -> None:
    samples_ns = [1_000_000] * 99 + [50_000_000]
    stats = summarize(samples_ns)
    assert stats.outliers == 1
    assert stats.runs == 100
    assert stats.max_ms == pytest.approx(50.0)
    assert stats.mean_ms == pytest.approx((99 * 1.0 + 50.0) / 100)


def test_summarize_single_sample() -> None:
    stats = summarize([2_500_000])
    assert stats == LatencyStats(2.5, 2.5, 2.5, 2.5, 0.0, 2.5, 2.5, 1, 0)


def test_summarize_rejects_empty() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        summarize([])


def test_time_runs_stops_at_min_runs_when_min_time_is_zero() -> None:
    run = Counter()
    stats = time_runs(run, warmup_runs=3, min_time_s=0.0, min_runs=7, max_runs=100)
    assert stats.runs == 7
    assert run.calls == 3 + 7


def test_time_runs_max_runs_wins_over_min_time() -> None:
    run = Counter()
    stats = time_runs(run, warmup_runs=0, min_time_s=3600.0, min_runs=1, max_runs=25)
    assert stats.runs == 25
    assert run.calls == 25


def test_time_runs_keeps_running_until_min_time() -> None:
    run = Counter()
    start = time.perf_counter()
    stats = time_runs(run, warmup_runs=1, min_time_s=0.05, min_runs=2, max_runs=10_000_000)
    assert time.perf_counter() - start >= 0.05
    assert stats.runs > 2
    assert run.calls == stats.runs + 1


def test_time_runs_percentiles_are_ordered() -> None:
    stats = time_runs(lambda: sum(range(100)), warmup_runs=2, min_time_s=0.0, min_runs=50, max_runs=50)
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.outliers <= stats.runs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warmup_runs": -1, "min_time_s": 0.0, "min_runs": 1, "max_runs": 1},
        {"warmup_runs": 0, "min_time_s": -1.0, "min_runs": 1, "max_runs": 1},
        {"warmup_runs": 0, "min_time_s": 0.0, "min_runs": 0, "max_runs": 1},
        {"warmup_runs": 0, "min_time_s": 0.0, "min_runs": 5, "max_runs": 4},
    ],
)
def test_time_runs_rejects_bad_counts(kwargs: dict) -> None:
    run = Counter()
    with pytest.raises(ValueError):
        time_runs(run, **kwargs)
    assert run.calls == 0
