"""How much ONNX Runtime's profiler slows a run: median ``model_run`` of a profiled session against
the p50 of an unprofiled one, same file, batch 1, sessions as edgekd makes them for local-cpu.

    python bench/profiler_instrumentation.py .bench/final/seed0/student.onnx .bench/final/seed0/student.int8.onnx
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from edgekd.api import load_targets
from edgekd.onnx_model import example_input
from edgekd.runtime.onnxruntime import create_session


def run_ms(path: Path, *, profiled: bool, runs: int) -> float:
    """Median unprofiled ``session.run`` time, or median profiled ``model_run`` duration (ms), in a
    session set up as edgekd times local-cpu."""
    (target,) = load_targets(["local-cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        session = create_session(path, target, profile_prefix=str(Path(tmp) / "ort") if profiled else None)
        feed = {session.get_inputs()[0].name: example_input(path, batch=1)}
        times = []
        for _ in range(runs + 50):  # the first 50 warm up
            started = time.perf_counter_ns()
            session.run(None, feed)
            times.append(time.perf_counter_ns() - started)
        if not profiled:
            return statistics.median(times[50:]) / 1e6
        events = json.loads(Path(session.end_profiling()).read_text())
    durations = [e["dur"] for e in events if e.get("name") == "model_run"][-runs:]
    return statistics.median(durations) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    for path in args.models:
        plain = run_ms(path, profiled=False, runs=args.runs)
        profiled = run_ms(path, profiled=True, runs=args.runs)
        print(f"{path}: unprofiled p50 {plain:.4f} ms · profiled model_run median {profiled:.4f} ms"
              f" ({profiled / plain:.1f}×)")


if __name__ == "__main__":
    main()
