"""Faults a team meets in CI: a full disk, a read-only run folder, two runs on one folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.pipeline.manifest import files_intact
from tests.conftest import TINY_PIPELINE, write_pipeline

pytestmark = pytest.mark.slow
runner = CliRunner()


def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount_tmpfs(mount, "size=160k")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_a_clear_error_and_the_run_resumes(tiny_pipeline: Path, small_disk: Path) -> None:
    run_dir = small_disk / "run"
    result = runner.invoke(app, ["compress", str(tiny_pipeline), "--out", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.stderr and "Traceback" not in result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for stage, entry in manifest["stages"].items():
        assert files_intact(run_dir / stage, entry["artifacts"])
    finished = set(manifest["stages"])
    assert finished, "expected at least the teacher to fit on the small disk"

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resumed = runner.invoke(app, ["compress", str(tiny_pipeline), "--out", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    statuses = json.loads((run_dir / "report.json").read_text())["stages"]
    assert all(statuses[stage]["status"] == "cached" for stage in finished)


def test_read_only_run_folder_is_a_clear_error(tiny_pipeline: Path, tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount_tmpfs(mount, "ro,size=1m")
    try:
        result = runner.invoke(app, ["compress", str(tiny_pipeline), "--out", str(mount / "run")])
        assert result.exit_code == 2, result.output
        assert "Read-only file system" in result.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["teacher"]["train"]["epochs"] = 40  # keeps the first run busy
    pipeline = write_pipeline(tmp_path, data)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgekd", "compress", str(pipeline), "--out", str(run_dir)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / ".teacher.partial").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "another edgekd is running" in second.stderr
        assert (run_dir / ".teacher.partial").exists(), "the second run must not touch the first one's work"
    finally:
        first.kill()
        first.wait()
    assert not os.path.exists(run_dir / "report.json")
