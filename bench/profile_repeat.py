"""Repeatability: `edgekd profile` of one model, N separate invocations, p50 spread (max/min).

Exports a small CNN (the one of bench/profile_overhead.py), then runs
``edgekd profile MODEL --target local-cpu --batch B --json FILE`` N times, each a fresh
process with edgekd's default settings, and prints every p50 and max/min. Note the load
average it prints: on a shared machine other processes move the numbers.

    python bench/profile_repeat.py [--runs 5] [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.profile_overhead import export_cnn  # noqa: E402


def main() -> None:
    """Run the invocations and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--target", default="local-cpu")
    args = parser.parse_args()

    p50s = []
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-repeat-") as tmp:
        model = Path(tmp) / "cnn64.onnx"
        export_cnn(model)
        load_before = os.getloadavg()
        for index in range(args.runs):
            out = Path(tmp) / f"run{index}.json"
            subprocess.run([sys.executable, "-m", "edgekd", "profile", str(model), "--target", args.target,
                            "--batch", str(args.batch), "--json", str(out)], check=True, capture_output=True)
            record = json.loads(out.read_text())[0]
            p50s.append(record["p50_ms"])
        load_after = os.getloadavg()
    print(f"edgekd profile cnn64 --target {args.target} --batch {args.batch}: {args.runs} invocations;"
          f" {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after;"
          f" {record['threads']} threads, onnxruntime {record['runtime_version']}")
    for index, p50 in enumerate(p50s, start=1):
        print(f"  run {index}: p50 {p50:.4f} ms")
    print(f"p50 spread max/min: {max(p50s) / min(p50s):.3f}")


if __name__ == "__main__":
    main()
