"""A non-editable install (a built wheel) finds its built-in pipelines and targets from any folder."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_wheel_ships_pipelines_and_targets(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    wheel = next(wheels.glob("edgekd-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import edgekd, edgekd.resources as r;"
        "print(edgekd.__file__);print(r.resolve('pipelines','quickstart'));print(r.resolve('targets','local-cpu'))"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=elsewhere, capture_output=True, text=True, check=True)
    package_file, pipeline, target = out.stdout.split()
    site = str(env_dir)
    assert package_file.startswith(site), "the wheel's edgekd was not the one imported"
    assert pipeline.startswith(site) and pipeline.endswith("quickstart.yaml")
    assert target.startswith(site) and target.endswith("local-cpu.yaml")
    listed = subprocess.run([str(env_dir / "bin" / "edgekd"), "targets", "list"], cwd=elsewhere,
                            capture_output=True, text=True, check=True)
    assert "local-cpu" in listed.stdout
