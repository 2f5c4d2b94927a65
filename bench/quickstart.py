"""Quickstart benchmark: end-to-end wall time and peak RSS, and KD-through-TA vs no-KD over seeds.

    python bench/quickstart.py                 # 3 seeds, prints two tables
    python bench/quickstart.py --seeds 0 --out .bench/qs

Each seed is one `edgekd compress` (quickstart, `stages.distill.baseline=true`) in a subprocess:
the baseline trains the same student from the same initial weights on labels alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run(seed: int, out: Path) -> dict:
    run_dir = out / f"seed{seed}"
    cmd = [sys.executable, "-m", "edgekd", "compress", "quickstart", "--out", str(run_dir), "--fresh",
           "--set", f"seed={seed}", "--set", "stages.distill.baseline=true"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        sys.exit(f"seed {seed}: edgekd exited {proc.returncode}\n{proc.stderr[-2000:]}")
    report = json.loads((run_dir / "report.json").read_text())
    return {"seed": seed, "wall_s": wall, "peak_rss_mib": max(peak_kib, before) / 1024,
            "exit": proc.returncode, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(".bench/quickstart"))
    args = parser.parse_args()
    results = [run(seed, args.out) for seed in args.seeds]

    print("| seed | wall s | peak RSS MiB (max so far) | exit | teacher | assistant | student (KD via TA) | student (no KD) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m = r["report"]["models"]
        print(f"| {r['seed']} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['exit']} | {m['teacher']['accuracy']:.2%} "
              f"| {m['assistant_1']['accuracy']:.2%} | {m['student']['accuracy']:.2%} | {m['student_no_kd']['accuracy']:.2%} |")
    kd = [r["report"]["models"]["student"]["accuracy"] * 100 for r in results]
    base = [r["report"]["models"]["student_no_kd"]["accuracy"] * 100 for r in results]
    spread = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
    print(f"\nstudent with KD via TA: {statistics.mean(kd):.2f} ± {spread(kd):.2f} %  "
          f"· without KD: {statistics.mean(base):.2f} ± {spread(base):.2f} %  (mean ± std over {len(results)} seeds)")
    m = results[0]["report"]["models"]
    print(f"params teacher/student: {m['teacher']['params'] / m['student']['params']:.0f}×")
    for r in results[:1]:
        p50 = {(x["model"], x["batch"]): x["p50_ms"] for x in r["report"]["latency"] if x["target"] == "local-cpu"}
        for batch in sorted({b for _, b in p50}):
            print(f"local-cpu p50 batch {batch}: teacher {p50[('teacher', batch)]:.3f} ms · "
                  f"student {p50[('student', batch)]:.3f} ms ({p50[('teacher', batch)] / p50[('student', batch)]:.1f}× faster)")


if __name__ == "__main__":
    main()
