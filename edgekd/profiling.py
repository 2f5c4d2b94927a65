"""The timing loop and its statistics: pure Python and numpy, no runtime imports.

Runtimes hand :func:`time_runs` a zero-argument callable that runs the model once;
it warms up, then times each run with :func:`time.perf_counter_ns` until both a
minimum number of runs and a minimum wall time are reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_NS_PER_MS = 1e6


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-run latencies, in milliseconds.

    Attributes:
        p50_ms: Median (linear interpolation between samples).
        p90_ms: 90th percentile.
        p99_ms: 99th percentile.
        mean_ms: Arithmetic mean.
        std_ms: Population standard deviation.
        min_ms: Fastest run.
        max_ms: Slowest run.
        runs: Number of timed runs.
        outliers: Runs slower than ``mean + 3 * std``; reported, not dropped.
    """

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    runs: int
    outliers: int


def summarize(samples_ns: Sequence[int]) -> LatencyStats:
    """Turn per-run durations into percentiles and moments.

    Args:
        samples_ns: One duration per run, in nanoseconds.

    Returns:
        The statistics in milliseconds; percentiles use numpy's linear interpolation.

    Raises:
        ValueError: If ``samples_ns`` is empty.
    """
    if len(samples_ns) == 0:
        raise ValueError("summarize() needs at least one sample")
    ms = np.asarray(samples_ns, dtype=np.float64) / _NS_PER_MS
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    std = float(ms.std())
    return LatencyStats(
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=mean,
        std_ms=std,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        runs=int(ms.size),
        outliers=int(np.count_nonzero(ms > mean + 3.0 * std)),
    )


def time_runs(
    run_once: Callable[[], object],
    *,
    warmup_runs: int,
    min_time_s: float,
    min_runs: int,
    max_runs: int,
) -> LatencyStats:
    """Time repeated calls of ``run_once``.

    After ``warmup_runs`` untimed calls, each call is timed on its own until at
    least ``min_runs`` calls are done and ``min_time_s`` seconds have passed since
    the first timed call, or until ``max_runs`` calls are done, whichever comes
    first. Durations go into a preallocated list, so the loop adds only two clock
    reads and a store per run.

    Args:
        run_once: Runs the model once; its result is ignored.
        warmup_runs: Untimed calls before timing starts.
        min_time_s: Minimum total time of the timed calls, in seconds.
        min_runs: Minimum number of timed calls.
        max_runs: Maximum number of timed calls; wins over ``min_time_s``.

    Returns:
        The statistics of the timed calls.

    Raises:
        ValueError: If a count is out of range or ``max_runs < min_runs``.
    """
    if warmup_runs < 0 or min_time_s < 0 or min_runs < 1 or max_runs < min_runs:
        raise ValueError(
            "time_runs() needs warmup_runs >= 0, min_time_s >= 0 and 1 <= min_runs <= max_runs"
            f" (got {warmup_runs}, {min_time_s}, {min_runs}, {max_runs})"
        )
    for _ in range(warmup_runs):
        run_once()
    clock = time.perf_counter_ns
    samples = [0] * max_runs
    done = 0
    deadline = clock() + int(min_time_s * 1e9)
    while done < max_runs:
        start = clock()
        run_once()
        end = clock()
        samples[done] = end - start
        done += 1
        if done >= min_runs and end >= deadline:
            break
    return summarize(samples[:done])
