"""Device-side timing of GPU inference with CUDA events: H2D copy, compute and D2H copy apart.

Used by the torch (CUDA) and TensorRT runtimes; needs a CUDA build of torch, imported here
only when a GPU runtime is timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgekd.config.pipeline import ProfileConfig
from edgekd.profiling import LatencyStats, summarize

METHOD = "CUDA events around H2D copy + compute + D2H copy, one inference at a time"
_NS_PER_MS = 1e6


@dataclass(frozen=True)
class CudaTiming:
    """Statistics of the whole inference, and the median of each of its three parts (ms)."""

    stats: LatencyStats
    h2d_ms: float
    compute_ms: float
    d2h_ms: float


def time_cuda_runs(
    h2d: Callable[[], object],
    compute: Callable[[], object],
    d2h: Callable[[], object],
    *,
    stream,
    settings: ProfileConfig,
) -> CudaTiming:
    """Time repeated inferences, each split into three parts enqueued on ``stream``.

    Events are recorded on ``stream`` before the H2D copy, after it, after the compute
    and after the D2H copy; the host waits for the last event after every run, so runs
    do not overlap. Warm-up, ``min_runs``, ``min_time_s`` (host wall time since the first
    timed run) and ``max_runs`` work as in :func:`edgekd.profiling.time_runs`.

    Args:
        h2d: Enqueues the copy of the input to the device.
        compute: Enqueues the model (kernels or a CUDA graph replay).
        d2h: Enqueues the copy of the output back to the host.
        stream: The ``torch.cuda.Stream`` the three callables enqueue on.
        settings: Warm-up and run counts.

    Returns:
        Statistics of the event-timed total, and per-part medians.
    """
    import torch

    events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    parts = (h2d, compute, d2h)

    def run_once() -> tuple[float, float, float]:
        with torch.cuda.stream(stream):
            events[0].record(stream)
            for part, event in zip(parts, events[1:], strict=True):
                part()
                event.record(stream)
        events[3].synchronize()
        return tuple(events[i].elapsed_time(events[i + 1]) for i in range(3))  # type: ignore[return-value]

    for _ in range(settings.warmup_runs):
        run_once()
    timed: list[tuple[float, float, float]] = []
    deadline = time.perf_counter() + settings.min_time_s
    while len(timed) < settings.max_runs:
        timed.append(run_once())
        if len(timed) >= settings.min_runs and time.perf_counter() >= deadline:
            break
    stats = summarize([sum(parts_ms) * _NS_PER_MS for parts_ms in timed])
    h2d_ms, compute_ms, d2h_ms = (statistics.median(column) for column in zip(*timed, strict=True))
    return CudaTiming(stats=stats, h2d_ms=h2d_ms, compute_ms=compute_ms, d2h_ms=d2h_ms)
