"""Overhead of edgekd's timing loop against a bare loop of ``sess.run``.

Exports a small CNN (64 channels, 16x16 input) to ONNX, then alternates rounds of
(a) a bare ``for`` loop timing ``sess.run`` with ``perf_counter_ns`` (median) and
(b) ``OnnxRuntime.profile()`` (p50), both with the same session options and
threads, and prints both and their ratio. Run: ``python bench/profile_overhead.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this checkout's edgekd

from edgekd.config.pipeline import ProfileConfig  # noqa: E402
from edgekd.config.target import TargetConfig  # noqa: E402
from edgekd.onnx_model import example_input  # noqa: E402
from edgekd.runtime.onnxruntime import OnnxRuntime, create_session  # noqa: E402


def export_cnn(path: Path) -> None:
    """Export a three-conv, 64-channel CNN for 3x16x16 inputs with a dynamic batch axis."""
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, torch.randn(1, 3, 16, 16), str(path), dynamo=False,
            input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}},
        )


def bare_median_ms(model_path: Path, target: TargetConfig, batch: int, warmup: int, runs: int) -> float:
    """Median of ``runs`` timed ``sess.run`` calls in a plain loop, in milliseconds."""
    session = create_session(model_path, target)
    feed = {session.get_inputs()[0].name: example_input(model_path, batch)}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, feed)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=300, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both")
    args = parser.parse_args()

    target = TargetConfig(name="bench-cpu", threads=args.threads)
    settings = ProfileConfig(
        warmup_runs=args.warmup, min_time_s=0.0, min_runs=args.runs, max_runs=args.runs, layer_profile_runs=0
    )
    runtime = OnnxRuntime(target)
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-") as tmp:
        model_path = Path(tmp) / "cnn64.onnx"
        export_cnn(model_path)
        rows = []
        for round_index in range(1, args.rounds + 1):
            bare = bare_median_ms(model_path, target, args.batch, args.warmup, args.runs)
            record = runtime.profile(
                model_path, model_name="cnn64", batch=args.batch, precision="fp32", settings=settings
            )
            rows.append((round_index, bare, record.p50_ms))

    print(f"CNN 3->64->64->64 ch, 16x16, batch {args.batch}, {args.threads} thread(s), "
          f"{args.runs} runs per measurement, onnxruntime {record.runtime_version}")
    print(f"{'round':>5} | {'bare median ms':>14} | {'profile p50 ms':>14} | {'ratio':>6}")
    print("-" * 50)
    for round_index, bare, p50 in rows:
        print(f"{round_index:>5} | {bare:>14.4f} | {p50:>14.4f} | {p50 / bare:>6.3f}")
    bare_median = statistics.median(bare for _, bare, _ in rows)
    p50_median = statistics.median(p50 for _, _, p50 in rows)
    print("-" * 50)
    print(f"ratio of medians (profile / bare): {p50_median / bare_median:.3f}")
    print(f"mean ratio (profile / bare):       {statistics.mean(p50 / bare for _, bare, p50 in rows):.3f}")


if __name__ == "__main__":
    main()
