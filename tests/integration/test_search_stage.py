"""The search stage in a pipeline: the searched student is distilled; a budget nobody meets exits 1;
another process joins the study with `edgekd search-worker`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from tests.conftest import TINY_PIPELINE, write_pipeline

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture
def search_pipeline(tmp_path: Path) -> Path:
    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["search"] = {"space": "plain_cnn", "choices": {"channels": [[4, 8], [8, 16]]}, "trials": 3,
                                "budget_ms": 1000.0, "proxy": {"epochs": 1, "data_fraction": 0.3}}
    data["stages"]["distill"] = {"assistants": [], "train": {"epochs": 1, "lr": 0.1}}
    data["stages"]["qkd"] = {"calibration_samples": 32, "self_studying": {"epochs": 1}, "co_studying": {"epochs": 0},
                             "tutoring": {"epochs": 1}, "baselines": False}
    return write_pipeline(tmp_path, data)


def test_the_searched_student_is_distilled(search_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(search_pipeline), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "report.json").read_text())
    search = report["search"]
    assert len(search["trials"]) == 3 and search["met_budget"] is True
    manifest = json.loads((run_dir / "manifest.json").read_text())
    student = manifest["stages"]["distill"]["outputs"]["models"]["student"]
    assert student["family"] == search["best"]["name"] == "plain_cnn"
    int8 = report["models"]["student_int8"]
    assert int8["family"] == "plain_cnn"  # the searched student, quantized
    # only local-cpu (ONNX Runtime on the CPU) is profiled: the INT8 file takes ONNX Runtime's fast form
    assert int8["int8_form"] == "onnxruntime" and {v["rule"] for v in int8["qdq_violations"]} == {"int8"}
    chosen = search["best"]["params"]["channels"]
    assert chosen[0] in (4, 8) and chosen[1] in (8, 16)
    assert {"name": "search_budget_ms@local-cpu", "limit": 1000.0, "ok": True}.items() <= report["budgets"][-1].items()
    assert "### Student search" in (run_dir / "report.md").read_text()

    # The study is complete: a late worker joins, finds nothing left to do, and says so.
    worker = runner.invoke(app, ["search-worker", "--storage", search["storage"], "--study", search["study_name"]])
    assert worker.exit_code == 0, worker.output
    assert "finished 0 trial(s)" in worker.stdout


def test_a_budget_no_candidate_meets_exits_1_with_the_fastest(search_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(search_pipeline), "--out", str(run_dir),
                                 "--set", "stages.search.budget_ms=0.000001"])
    assert result.exit_code == 1, result.output
    search = json.loads((run_dir / "report.json").read_text())["search"]
    assert search["met_budget"] is False
    assert search["best_trial"]["latency_ms"] == min(t["latency_ms"] for t in search["trials"])


def test_bad_search_input_is_exit_2_before_anything_runs(search_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for override in ("stages.search.space=resnet", "stages.search.choices={channels: []}",
                     "stages.search.target=jetson-orin-nano", "stages.search.reward={w_under: 1}"):
        result = runner.invoke(app, ["compress", str(search_pipeline), "--out", str(run_dir), "--set", override])
        assert result.exit_code == 2, (override, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()
    worker = runner.invoke(app, ["search-worker", "--storage", "postgresql://nobody@127.0.0.1:1/none",
                                 "--study", "x"])
    assert worker.exit_code == 2, worker.output
