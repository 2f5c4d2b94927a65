"""`edgekd compress --nproc 2`: two gloo processes train with DistributedDataParallel, rank 0 writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_PIPELINE, write_pipeline

pytestmark = pytest.mark.slow


def test_two_processes_train_and_one_writes(tmp_path: Path) -> None:
    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["distill"]["assistants"] = []
    data["stages"]["distill"]["student"] = {"name": "plain_cnn", "params": {"channels": [8, 16]}}
    data["stages"]["distill"]["train"] = {"epochs": 4, "lr": 0.2}
    pipeline = write_pipeline(tmp_path, data)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "edgekd", "compress", str(pipeline), "--out", str(run_dir), "--nproc", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {name: entry["processes"] for name, entry in manifest["stages"].items()} == {
        "teacher": 2, "distill": 2, "export": 1, "profile": 1}
    report = json.loads((run_dir / "report.json").read_text())
    assert report["models"]["student"]["accuracy"] > 0.3  # it learned: chance is 0.1
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != ".lock") == []
    assert proc.stdout.count("deployable model:") == 1  # only rank 0 prints the summary
