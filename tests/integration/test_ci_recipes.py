"""The CI recipes' own commands, run with bash on a shrunken quickstart: exit codes and summary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_PIPELINE, write_pipeline

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def github_script() -> str:
    workflow = yaml.safe_load((ROOT / "docs/ci/github-actions.yml").read_text())
    steps = workflow["jobs"]["compress"]["steps"]
    return next(s["run"] for s in steps if s.get("name", "").startswith("Compress"))


def gitlab_script() -> str:
    job = yaml.safe_load((ROOT / "docs/ci/gitlab-ci.yml").read_text())["edgekd"]
    return "set -e\n" + "\n".join(job["script"])


def run_recipe(script: str, pipeline: Path, workdir: Path) -> tuple[int, Path]:
    summary = workdir / "summary.md"
    env = {**os.environ, "PIPELINE": str(pipeline), "RUN_DIR": "runs/ci", "GITHUB_STEP_SUMMARY": str(summary)}
    proc = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, summary


@pytest.mark.parametrize("recipe", [github_script, gitlab_script], ids=["github", "gitlab"])
def test_recipe_exit_codes(recipe, tmp_path: Path) -> None:
    script = recipe()
    ok = write_pipeline(tmp_path, TINY_PIPELINE, "ok.yaml")
    missed_data = json.loads(json.dumps(TINY_PIPELINE))
    missed_data["budgets"]["min_accuracy"] = 1.0
    missed = write_pipeline(tmp_path, missed_data, "missed.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstages: {teacher: {modle: {}}}\n")

    for pipeline, expected in ((ok, 0), (missed, 1), (bad, 2)):
        workdir = tmp_path / f"work-{pipeline.stem}"
        workdir.mkdir()
        code, summary = run_recipe(script, pipeline, workdir)
        assert code == expected, pipeline.name
        if recipe is github_script and expected != 2:
            assert ("budgets met" if expected == 0 else "missed") in summary.read_text().splitlines()[0]
        if expected != 2:
            assert (workdir / "runs/ci/report.json").is_file()
