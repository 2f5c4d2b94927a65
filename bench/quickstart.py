"""Quickstart benchmark: wall time, peak RSS, KD-through-TA vs no KD, and QKD vs PTQ vs QAT, over seeds.

    python bench/quickstart.py                          # 3 seeds of the quickstart
    python bench/quickstart.py --seeds 0 --out .bench/wide \\
        --set 'stages.distill.student.params.channels=[64,128,128]'   # a ≥64-channel student
    python bench/quickstart.py --pipeline quickstart-search --budget-from quickstart \\
        --out .bench/qsearch                 # searched student, budget = the hand-picked student's p50
    cp -r .bench/quickstart .bench/t1 && python bench/quickstart.py --out .bench/t1 --reuse \\
        --set stages.qkd.ce_weight=1          # only qkd and what follows it run again

Each seed is one `edgekd compress` (with `stages.distill.baseline=true`: the same student, from the
same initial weights, trained on labels alone) in its own process; every number below comes from
that run's report.json.

``--budget-from PIPELINE`` sets ``stages.search.budget_from`` of each seed's run to PIPELINE's
hand-picked student: the search times that student on its target (local-cpu) when it starts, with
the candidates' settings, and takes its p50 as the budget; a candidate with that architecture
gets the same number, so the hand-picked student is always within the budget it defines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def handpicked_student(pipeline: str) -> dict:
    """``pipeline``'s hand-picked student as a model spec."""
    from edgekd.api import load_pipeline

    config, _ = load_pipeline(pipeline)
    return config.stages.distill.student.model_dump(mode="json")


def run(pipeline: str, seed: int, out: Path, overrides: list[str], reuse: bool = False) -> dict:
    run_dir = out / f"seed{seed}"
    cmd = [sys.executable, "-m", "edgekd", "compress", pipeline, "--out", str(run_dir), *([] if reuse else ["--fresh"]),
           "--set", f"seed={seed}", "--set", "stages.distill.baseline=true"]
    for item in overrides:
        cmd += ["--set", item]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"seed {seed}: edgekd exited {proc.returncode}\n{proc.stderr[-3000:]}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seed": seed, "wall_s": wall, "peak_rss_mib": peak_mib, "exit": proc.returncode,
            "report": json.loads((run_dir / "report.json").read_text())}


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="quickstart", help="a built-in pipeline or YAML path")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(".bench/quickstart"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to edgekd --set")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the finished stages of run folders already in --out (e.g. copies of an earlier"
                             " run): only the stages that the --set overrides change run again")
    parser.add_argument("--budget-from", metavar="PIPELINE",
                        help="search budget = the p50 of this pipeline's student, timed by the search")
    args = parser.parse_args()
    overrides = list(args.overrides)
    if args.budget_from:
        overrides += ["stages.search.budget_ms=null",
                      f"stages.search.budget_from={json.dumps(handpicked_student(args.budget_from))}"]
    results = [{**run(args.pipeline, seed, args.out, overrides, args.reuse), "load": os.getloadavg()[0]}
               for seed in args.seeds]
    names = ("teacher", "assistant_1", "student", "student_no_kd", "student_int8", "student_ptq", "student_qat")
    present = [n for n in names if n in results[0]["report"]["models"]]

    print("| seed | wall s | peak RSS MiB | exit | " + " | ".join(present) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * len(present))
    for r in results:
        models = r["report"]["models"]
        accs = " | ".join(f"{models[n]['accuracy']:.2%}" for n in present)
        print(f"| {r['seed']} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['exit']} | {accs} |")

    print("\nmean ± std accuracy (%) over seeds", args.seeds)
    for name in present:
        print(f"  {name:14s} {mean_std([r['report']['models'][name]['accuracy'] * 100 for r in results])}")
    if len(results) > 1:
        print("\npaired differences (points), mean ± standard error (wins / ties / losses)")
        for a, b in (("student_int8", "student_qat"), ("student_int8", "student_ptq"), ("student_int8", "student"),
                     ("student_qat", "student")):
            if a in present and b in present:
                diffs = [(r["report"]["models"][a]["accuracy"] - r["report"]["models"][b]["accuracy"]) * 100
                         for r in results]
                counts = [sum(d > 1e-9 for d in diffs), sum(abs(d) <= 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)]
                print(f"  {a} − {b}: {statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs) / len(diffs) ** 0.5:.2f}"
                      f" ({' / '.join(map(str, counts))})")
    models = results[0]["report"]["models"]
    print(f"params teacher / student: {models['teacher']['params'] / models['student']['params']:.0f}×")
    for r in results:
        search = r["report"].get("search")
        if search:
            print(f"seed {r['seed']} searched student: {search['best']['params']} · p50 "
                  f"{search['best_trial']['latency_ms']:.4f} ms · budget {search['budget_ms']:.4f} ms · met "
                  f"{search['met_budget']} · final accuracy {r['report']['models']['student']['accuracy']:.2%}"
                  f" · load after the run {r['load']:.2f}")
        tried = r["report"].get("assistants_tried")
        for row in tried or []:
            names = ", ".join(f"{a['params']}" for a in row["assistants"]) or "none"
            print(f"seed {r['seed']} assistants {names}: val {', '.join(f'{a:.2%}' for a in row['assistant_accuracy'])}"
                  f"{' → ' if row['assistants'] else ''}student val {row['student_accuracy']:.2%}"
                  f"{' (chosen)' if row['chosen'] else ''}")
    if "student_int8" in models:
        print(f"INT8 / FP32 ONNX size: {models['student_int8']['size_bytes'] / models['student']['size_bytes']:.3f}"
              f" ({models['student_int8']['size_bytes']:,} / {models['student']['size_bytes']:,} bytes)")
    for r in results:
        for row in r["report"].get("precision_choice", []):
            print(f"seed {r['seed']} {row['target']} batch {row['batch']}: FP32 p50 {row['fp32_p50_ms']:.4f} ms · "
                  f"INT8 p50 {row['int8_p50_ms']:.4f} ms · INT8 speed-up {row['speedup']:.2f}×")
        print(f"seed {r['seed']} deployed: {r['report']['deployable']['precision']} — "
              f"{r['report']['deployable']['reason']}")
        p50 = {(x["model"], x["batch"]): x["p50_ms"] for x in r["report"]["latency"] if x["target"] == "local-cpu"}
        for batch in sorted({b for _, b in p50}):
            print(f"seed {r['seed']} local-cpu batch {batch}: teacher p50 {p50[('teacher', batch)]:.3f} ms · "
                  f"student {p50[('student', batch)]:.4f} ms ({p50[('teacher', batch)] / p50[('student', batch)]:.1f}×)")


if __name__ == "__main__":
    main()
