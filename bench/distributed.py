"""One process vs two (gloo, DistributedDataParallel) on the quickstart's distill stage.

    python bench/distributed.py [--seed S]

Trains the quickstart teacher once, then re-runs only the distill stage (same teacher, same
config) with `--nproc 1` and `--nproc 2` in copies of that run folder, and compares the students.
A third run, one process with one torch thread (as each torchrun rank has), changes nothing but
the order of float sums: how far it lands from the first is how far float rounding alone moves
the final accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Changing the distill batch size (to the value it already has) re-runs distill, not the teacher.
RERUN_DISTILL = "stages.distill.train.batch_size=64"


def compress(run_dir: Path, seed: int, *extra: str, threads: int | None = None) -> float:
    cmd = [sys.executable, "-m", "edgekd", "compress", "quickstart", "--out", str(run_dir),
           "--set", "stages.qkd=null", "--set", f"seed={seed}", *extra]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".bench/distributed"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = args.out / f"seed{args.seed}" / "base"
    compress(base, args.seed)
    rows = []
    for label, nproc, threads in (("1", 1, None), ("2", 2, None), ("1, 1 thread", 1, 1)):
        run_dir = args.out / f"seed{args.seed}" / f"nproc{nproc}" if threads is None else \
            args.out / f"seed{args.seed}" / f"nproc{nproc}-threads{threads}"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(base, run_dir)
        seconds = compress(run_dir, args.seed, "--set", RERUN_DISTILL, "--nproc", str(nproc), threads=threads)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        distill = manifest["stages"]["distill"]
        models = distill["outputs"]["models"]
        rows.append((label, distill["processes"], distill["seconds"], seconds, models))
    print("| nproc | processes | distill s | run s | assistant_1 | student |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, processes, stage_s, run_s, models in rows:
        print(f"| {label} | {processes} | {stage_s:.1f} | {run_s:.1f} | {models['assistant_1']['accuracy']:.2%} "
              f"| {models['student']['accuracy']:.2%} |")
    student = [100 * row[4]["student"]["accuracy"] for row in rows]
    print(f"\nstudent accuracy, 2 processes − 1 process: {student[1] - student[0]:+.2f} points")
    print(f"student accuracy, 1 process at 1 thread − 1 process: {student[2] - student[0]:+.2f} points"
          " (float rounding alone)")


if __name__ == "__main__":
    main()
