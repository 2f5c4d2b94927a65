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
    assert search["score"] == "soft_accuracy" and all(0 < t["score"] < 1 for t in search["trials"])
    markdown = (run_dir / "report.md").read_text()
    assert "### Student search" in markdown and "ranked by soft accuracy" in markdown and "Proxy score" in markdown
    assert "| search_budget_ms@local-cpu | ≤ 1,000.0 ms |" in markdown

    # A run made before trial rows had a score (ranked by top-1 accuracy) still re-renders.
    result = manifest["stages"]["search"]["outputs"]["result"]
    del result["score"]
    for row in [*result["trials"], *result["pareto"], result["best_trial"]]:
        del row["score"]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    rendered = runner.invoke(app, ["report", str(run_dir)])
    assert rendered.exit_code == 0, rendered.output
    assert "ranked by top-1 accuracy" in (run_dir / "report.md").read_text()

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


def test_a_budget_from_a_model_is_timed_and_named_in_the_report(search_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(search_pipeline), "--out", str(run_dir), "--set",
                                 "stages.search.budget_ms=null", "--set", "stages.search.trials=4", "--set",
                                 "stages.search.budget_from={name: plain_cnn, params: {channels: [8, 16]}}"])
    assert result.exit_code == 0, result.output
    search = json.loads((run_dir / "report.json").read_text())["search"]
    assert search["budget_from"] == {"name": "plain_cnn", "params": {"channels": [8, 16]}}
    # every candidate is tried (4 trials, 4 candidates): the reference meets its own p50, so one does
    (reference,) = [t for t in search["trials"] if t["spec"]["params"]["channels"] == [8, 16]]
    assert reference["latency_ms"] == search["budget_ms"] and reference["met_budget"] and search["met_budget"]
    assert "(the p50 of plain_cnn {'channels': [8, 16]})" in (run_dir / "report.md").read_text()


def test_bad_search_input_is_exit_2_before_anything_runs(search_pipeline: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for overrides in (["stages.search.space=resnet"], ["stages.search.choices={channels: []}"],
                      ["stages.search.target=jetson-orin-nano"], ["stages.search.reward={w_under: 1}"],
                      ["stages.search.proxy={score: f1}"],
                      ["stages.search.budget_from={name: plain_cnn}"],  # and budget_ms: two budgets
                      ["stages.search.budget_ms=null", "stages.search.budget_from={name: nope}"],
                      ["stages.search.budget_ms=null", "stages.search.budget_from={name: plain_cnn}",
                       "stages.search.latency=table"]):
        sets = [arg for override in overrides for arg in ("--set", override)]
        result = runner.invoke(app, ["compress", str(search_pipeline), "--out", str(run_dir), *sets])
        assert result.exit_code == 2, (overrides, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()
    worker = runner.invoke(app, ["search-worker", "--storage", "postgresql://nobody@127.0.0.1:1/none",
                                 "--study", "x"])
    assert worker.exit_code == 2, worker.output


def test_auto_assistants_keep_the_winning_chain_as_trained(tmp_path: Path) -> None:
    """`assistants: auto` trains each chain with the stage's own training and keeps the winner's
    models: the same models, to the weight, as listing the winning assistants by hand."""
    import torch

    data = json.loads(json.dumps(TINY_PIPELINE))
    data["stages"]["teacher"]["model"]["params"] = {"depth": 14, "width": 8}  # a resnet_cifar 8x8 fits between
    data["stages"]["distill"] = {"assistants": "auto", "student": {"name": "test_tiny"}, "baseline": True,
                                 "train": {"epochs": 1, "lr": 0.05}}
    auto = tmp_path / "auto"
    result = runner.invoke(app, ["compress", str(write_pipeline(tmp_path, data)), "--out", str(auto)])
    assert result.exit_code == 0, result.output
    report = json.loads((auto / "report.json").read_text())
    tried = report["assistants_tried"]
    assert [row["assistants"] for row in tried] == [[], [{"name": "resnet_cifar", "params": {"depth": 8, "width": 8}}]]
    chosen = next(row for row in tried if row["chosen"])
    models = report["models"]
    assert chosen["student_accuracy"] == models["student"]["val_accuracy"]
    assert [models[f"assistant_{i}"]["val_accuracy"] for i in range(1, len(chosen["assistants"]) + 1)] == \
        chosen["assistant_accuracy"]
    assert "Teacher assistants (auto)" in (auto / "report.md").read_text()

    data["stages"]["distill"]["assistants"] = chosen["assistants"]
    listed = tmp_path / "listed"
    result = runner.invoke(app, ["compress", str(write_pipeline(tmp_path, data, "listed.yaml")), "--out", str(listed)])
    assert result.exit_code == 0, result.output
    for name in ["student", "student_no_kd"] + [f"assistant_{i}" for i in range(1, len(chosen["assistants"]) + 1)]:
        a, b = (torch.load(run / "distill" / f"{name}.pt", weights_only=False) for run in (auto, listed))
        state_a, state_b = a["state_dict"], b["state_dict"]
        assert state_a.keys() == state_b.keys()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a), name
