"""Kill-and-resume: SIGKILL `edgekd compress` at random moments, resume, and compare with a clean run.

    python bench/kill_resume.py --kills 20

Uses the test suite's shrunken quickstart plus a qkd stage. A kill lands anywhere: inside a stage,
between a stage and its manifest entry, while the report is written. Each killed run is resumed
with the same command; its report must equal the uninterrupted run's (every model's accuracy,
parameters and size, parity, the deployable choice) and the deployable files must have the same
sha256. Latency and timings are measurements, so they are not compared.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgekd.fsutil import sha256_file  # noqa: E402
from tests.conftest import TINY_PIPELINE  # noqa: E402

QKD = {"calibration_samples": 64, "self_studying": {"epochs": 1, "lr": 0.01},
       "co_studying": {"epochs": 1, "lr": 0.005}, "tutoring": {"epochs": 1, "lr": 0.005}}


def comparable(run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    files = {name: sha256_file(run_dir / name) for name in ("student.onnx", "student.int8.onnx")}
    return {"models": report["models"], "parity": report["parity"], "files": files,
            "deployable_model": report["deployable"]["model"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(".bench/kill_resume"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["qkd"] = QKD
    data["stages"]["qkd"]["precision"] = "fp32"  # a deterministic choice: latency is not compared
    pipeline = args.out / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(data))

    def command(run_dir: Path) -> list[str]:
        return [sys.executable, "-m", "edgekd", "compress", str(pipeline), "--out", str(run_dir), "--fresh"]

    reference_dir = args.out / "reference"
    started = time.perf_counter()
    subprocess.run(command(reference_dir), check=True, capture_output=True)
    total = time.perf_counter() - started
    reference = comparable(reference_dir)
    print(f"uninterrupted run: {total:.1f} s")

    rng = random.Random(args.seed)
    identical = kills = attempts = 0
    print("| kill | at s | stages done when killed | resumed | identical |")
    print("|---:|---:|---|---|---|")
    while kills < args.kills and attempts < 3 * args.kills:
        attempts += 1
        run_dir = args.out / f"kill{attempts:02d}"
        at = rng.uniform(0.5, total)
        proc = subprocess.Popen(command(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        if proc.poll() is not None:  # the run finished before the kill: aim earlier next time
            total = at
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        manifest = run_dir / "manifest.json"
        done = sorted(json.loads(manifest.read_text())["stages"]) if manifest.exists() else []
        resume = subprocess.run(command(run_dir)[:-1], capture_output=True, text=True)
        same = resume.returncode == 0 and comparable(run_dir) == reference
        identical += same
        print(f"| {kills} | {at:.1f} | {', '.join(done) or '-'} | exit {resume.returncode} | {'yes' if same else 'NO'} |",
              flush=True)
    print(f"\n{identical}/{kills} killed-and-resumed runs identical to the uninterrupted one")


if __name__ == "__main__":
    main()
