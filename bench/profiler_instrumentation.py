"""How much ONNX Runtime's profiler slows a run: median ``model_run`` of a profiled session against
the p50 of an unprofiled one, same file, same threads, batch 1.

    python bench/profiler_instrumentation.py .bench/final/seed0/student.onnx .bench/final/seed0/student.int8.onnx
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def run_ms(path: Path, *, profiled: bool, runs: int, threads: int) -> float:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = profiled
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {i.name: np.random.default_rng(0).random([1, *i.shape[1:]], dtype=np.float32)
                for i in session.get_inputs()}
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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for path in args.models:
        plain = run_ms(path, profiled=False, runs=args.runs, threads=args.threads)
        profiled = run_ms(path, profiled=True, runs=args.runs, threads=args.threads)
        print(f"{path}: unprofiled p50 {plain:.4f} ms · profiled model_run median {profiled:.4f} ms"
              f" ({profiled / plain:.1f}×)")


if __name__ == "__main__":
    main()
