"""One process vs two (gloo, DistributedDataParallel) on the quickstart's distill stage.

    python bench/distributed.py [--seed S]

Trains the quickstart teacher once, then re-runs only the distill stage (same teacher, same
config) with `--nproc 1` and `--nproc 2` in copies of that run folder, and compares the students.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Changing the distill batch size (to the value it already has) re-runs distill, not the teacher.
RERUN_DISTILL = "stages.distill.train.batch_size=64"


def compress(run_dir: Path, seed: int, *extra: str) -> float:
    cmd = [sys.executable, "-m", "edgekd", "compress", "quickstart", "--out", str(run_dir),
           "--set", "stages.qkd=null", "--set", f"seed={seed}", *extra]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".bench/distributed"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = args.out / f"seed{args.seed}" / "base"
    compress(base, args.seed)
    rows = []
    for nproc in (1, 2):
        run_dir = args.out / f"seed{args.seed}" / f"nproc{nproc}"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(base, run_dir)
        seconds = compress(run_dir, args.seed, "--set", RERUN_DISTILL, "--nproc", str(nproc))
        manifest = json.loads((run_dir / "manifest.json").read_text())
        distill = manifest["stages"]["distill"]
        models = distill["outputs"]["models"]
        rows.append((nproc, distill["processes"], distill["seconds"], seconds, models))
    print("| nproc | processes | distill s | run s | assistant_1 | student |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nproc, processes, stage_s, run_s, models in rows:
        print(f"| {nproc} | {processes} | {stage_s:.1f} | {run_s:.1f} | {models['assistant_1']['accuracy']:.2%} "
              f"| {models['student']['accuracy']:.2%} |")
    delta = 100 * (rows[1][4]["student"]["accuracy"] - rows[0][4]["student"]["accuracy"])
    print(f"\nstudent accuracy, 2 processes − 1 process: {delta:+.2f} points")


if __name__ == "__main__":
    main()
