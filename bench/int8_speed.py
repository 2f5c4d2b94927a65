"""FP32 vs INT8 p50 of one student on local-cpu, measured alternately in one process.

    python bench/int8_speed.py RUN_DIR [--rounds 5]

RUN_DIR is an `edgekd compress` run folder with a qkd stage (it holds student.onnx and
student.int8.onnx). Each round profiles FP32 then INT8 at 1 and 2 ONNX Runtime threads and at
batch 1 and 32; the table gives the median p50 over rounds and the INT8 speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgekd.config import ProfileConfig  # noqa: E402
from edgekd.runtime import get_runtime  # noqa: E402
from edgekd.targets import load_target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = {"fp32": args.run_dir / "student.onnx", "int8": args.run_dir / "student.int8.onnx"}
    settings = ProfileConfig(min_time_s=0.5, layer_profile_runs=0)
    base = load_target("local-cpu")
    p50: dict[tuple[int, int, str], list[float]] = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            runtime = get_runtime(base.model_copy(update={"threads": threads}))
            for batch in (1, 32):
                for precision, path in files.items():
                    record = runtime.profile(path, model_name=precision, batch=batch, precision=precision,
                                             settings=settings)
                    p50.setdefault((threads, batch, precision), []).append(record.p50_ms)
    print(f"{args.run_dir}: median p50 over {args.rounds} alternating rounds (ms)")
    print("| threads | batch | FP32 | INT8 | INT8 speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for threads in (1, 2):
        for batch in (1, 32):
            fp32 = statistics.median(p50[(threads, batch, "fp32")])
            int8 = statistics.median(p50[(threads, batch, "int8")])
            print(f"| {threads} | {batch} | {fp32:.4f} | {int8:.4f} | {fp32 / int8:.2f}× |")


if __name__ == "__main__":
    main()
