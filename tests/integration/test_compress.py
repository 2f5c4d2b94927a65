"""`edgekd compress` end to end on a shrunken quickstart: run folder, report, resume, budgets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.export import PREPROCESSING_KEY
from edgekd.fsutil import sha256_file
from tests.conftest import TINY_PIPELINE, write_pipeline

pytestmark = pytest.mark.slow
runner = CliRunner()


def compress(*args: str):
    return runner.invoke(app, ["compress", *args])


def test_run_folder_report_and_cache(tiny_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = compress(str(tiny_pipeline), "--out", str(run_dir))
    assert result.exit_code == 0, result.output

    for name in ("manifest.json", "report.json", "report.md", "report.html", "student.onnx"):
        assert (run_dir / name).is_file(), name
    onnx.checker.check_model(onnx.load(run_dir / "student.onnx"))

    report = json.loads((run_dir / "report.json").read_text())
    assert list(report["models"]) == ["teacher", "assistant_1", "student"]
    for metrics in report["models"].values():
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert metrics["params"] > 0 and metrics["size_bytes"] > 0
    assert report["models"]["teacher"]["params"] > report["models"]["student"]["params"]
    for name, metrics in report["models"].items():  # every model's file is where report.json says
        assert (run_dir / metrics["onnx"]).stat().st_size == metrics["size_bytes"], name
    record_keys = {"model", "target", "runtime", "precision", "batch", "p50_ms", "p90_ms", "p99_ms",
                   "mean_ms", "std_ms", "throughput", "runs", "estimated"}
    assert {r["model"] for r in report["latency"]} == {"teacher", "assistant_1", "student"}
    for record in report["latency"]:
        assert record_keys <= record.keys() and record["estimated"] is False
        assert record["p50_ms"] <= record["p99_ms"]
    assert {b["name"] for b in report["budgets"]} == {"min_accuracy", "max_latency_p50_ms@local-cpu"}
    assert all(b["ok"] for b in report["budgets"])
    assert report["parity"]["student"]["top1_agreement"] >= 0.99
    spec = report["preprocessing"]
    assert spec["class_names"] == [str(d) for d in range(10)] and spec["shape"] == [1, 8, 8]
    for path in (run_dir / "student.onnx", run_dir / "export" / "teacher.onnx"):  # how to feed it travels with it
        metadata = {p.key: p.value for p in onnx.load(path).metadata_props}
        assert json.loads(metadata[PREPROCESSING_KEY]) == spec
    markdown = (run_dir / "report.md").read_text()
    assert "Inputs: float32 NCHW 1×8×8 (gray); scaled to [0, 1]: sklearn's digits pixel values (0-16) / 16" in markdown
    assert report["training"]["chain"] == ["teacher", "assistant_1", "student"]
    assert "Distillation: teacher → assistant_1 → student; hinton ×0.9 (temperature 4) + cross_entropy ×0.1" in markdown
    assert {s: v["status"] for s, v in report["stages"].items()} == dict.fromkeys(
        ("teacher", "distill", "export", "profile"), "done")

    manifest = json.loads((run_dir / "manifest.json").read_text())
    for stage, entry in manifest["stages"].items():
        for rel, meta in entry["artifacts"].items():
            assert sha256_file(run_dir / stage / rel) == meta["sha256"]
    assert manifest["artifacts"]["student.onnx"]["sha256"] == sha256_file(run_dir / "student.onnx")

    # Unchanged config: everything is reused. A changed profile setting re-runs only profile.
    again = compress(str(tiny_pipeline), "--out", str(run_dir), "--set", "stages.profile.min_runs=6")
    assert again.exit_code == 0, again.output
    statuses = {s: v["status"] for s, v in json.loads((run_dir / "report.json").read_text())["stages"].items()}
    assert statuses == {"teacher": "cached", "distill": "cached", "export": "cached", "profile": "done"}
    assert "profile: running (changed since the last run: profile settings)" in again.stderr


def test_data_edited_in_place_is_trained_again(tmp_path: Path) -> None:
    from PIL import Image

    for label, name in enumerate(["a", "b", "c"]):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(8):
            Image.new("L", (8, 8), 40 * label + i).save(tmp_path / "imgs" / name / f"{i}.png")
    pipeline = write_pipeline(tmp_path, {**TINY_PIPELINE, "data": {"kind": "image_folder", "path": "imgs",
                                                                   "test_fraction": 0.25, "batch_size": 8}})
    run_dir = tmp_path / "run"

    def rerun() -> tuple[set[str], str]:
        result = compress(str(pipeline), "--out", str(run_dir))
        assert result.exit_code == 0, result.output
        stages = json.loads((run_dir / "report.json").read_text())["stages"]
        return {v["status"] for v in stages.values()}, result.stderr

    assert rerun()[0] == {"done"}
    assert rerun()[0] == {"cached"}
    Image.new("L", (8, 8), 255).save(tmp_path / "imgs" / "a" / "0.png")  # same name, new pixels
    statuses, log = rerun()
    assert statuses == {"done"}
    assert "teacher: running (changed since the last run: data)" in log


def test_tampered_artifact_is_not_trusted(tiny_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert compress(str(tiny_pipeline), "--out", str(run_dir)).exit_code == 0
    student = run_dir / "distill" / "student.pt"
    student.write_bytes(student.read_bytes()[:-10])
    again = compress(str(tiny_pipeline), "--out", str(run_dir))
    assert again.exit_code == 0
    assert "distill: running (its files changed on disk)" in again.stderr
    statuses = {s: v["status"] for s, v in json.loads((run_dir / "report.json").read_text())["stages"].items()}
    assert statuses["teacher"] == "cached" and statuses["distill"] == "done"


def test_missed_budget_exits_1_with_report(tiny_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = compress(str(tiny_pipeline), "--out", str(run_dir), "--set", "budgets.min_accuracy=1.0",
                      "--set", "budgets.max_size_bytes=10")
    assert result.exit_code == 1, result.output
    report = json.loads((run_dir / "report.json").read_text())
    missed = {b["name"] for b in report["budgets"] if not b["ok"]}
    assert missed == {"min_accuracy", "max_size_bytes"}
    assert "missed" in (run_dir / "report.md").read_text().splitlines()[0]


def test_fresh_starts_over(tiny_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert compress(str(tiny_pipeline), "--out", str(run_dir)).exit_code == 0
    assert compress(str(tiny_pipeline), "--out", str(run_dir), "--fresh").exit_code == 0
    statuses = {v["status"] for v in json.loads((run_dir / "report.json").read_text())["stages"].values()}
    assert statuses == {"done"}


def test_sigkill_mid_stage_resumes(tmp_path: Path) -> None:
    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["distill"]["train"]["epochs"] = 30  # long enough to be killed inside distill
    pipeline = write_pipeline(tmp_path, data)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgekd", "compress", str(pipeline), "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / ".distill.partial").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before distill started"
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "distill").exists() and not (run_dir / "report.json").exists()

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stages"]["teacher"]["status"] == "cached"
    assert report["stages"]["distill"]["status"] == "done"
    assert not (run_dir / ".distill.partial").exists()
