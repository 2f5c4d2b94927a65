"""The method library from the command line: `edgekd methods`, and bad method input as exit 2
before any stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from edgekd.cli.app import app
from edgekd.distill import LOSSES

runner = CliRunner()


def _pipeline(folder: Path, losses: list[dict], teacher: dict | None = None) -> Path:
    data = {
        "name": "methods-test",
        "data": {"kind": "digits"},
        "stages": {
            "teacher": teacher or {"model": {"name": "resnet_cifar", "params": {"depth": 8, "width": 4}},
                                   "train": {"epochs": 0}},
            "distill": {"student": {"name": "plain_cnn", "params": {"channels": [4, 8]}}, "losses": losses,
                        "train": {"epochs": 0}},
        },
    }
    path = folder / "pipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _bad_input(tmp_path: Path, pipeline: Path) -> str:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(pipeline), "--out", str(run_dir)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert not run_dir.exists(), "bad input must fail before any stage runs"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_methods_lists_every_loss_with_its_paper_and_born_again() -> None:
    result = runner.invoke(app, ["methods"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for name, cls in LOSSES.items():
        assert name in result.stdout and cls.paper.split(",")[0] in result.stdout
    assert "stages.distill.generations" in result.stdout and "Born-Again Neural Networks" in result.stdout


def test_wrong_tap_path_exits_2_listing_the_valid_layers(tmp_path: Path) -> None:
    line = _bad_input(tmp_path, _pipeline(tmp_path, [{"name": "at", "taps": {"student": "stages.1",
                                                                            "teacher": "stages.2"}}]))
    assert "stages.distill.losses.0 (at): the student has no layer 'stages.1'" in line
    assert "valid layers: stem," in line and "stages.0" in line


def test_unknown_method_exits_2_with_close_matches(tmp_path: Path) -> None:
    line = _bad_input(tmp_path, _pipeline(tmp_path, [{"name": "fitnet"}]))
    assert "stages.distill.losses.0.name" in line and "did you mean 'fitnets'" in line


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_feature_method_with_a_torchscript_teacher_exits_2(tmp_path: Path) -> None:
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "teacher.ts"))
    pipeline = _pipeline(tmp_path, [{"name": "crd"}], teacher={"torchscript": "teacher.ts"})
    line = _bad_input(tmp_path, pipeline)
    assert "stages.distill.losses.0 (crd): this method reads layer features" in line
    assert "TorchScript" in line


def test_the_cifar100_recipe_passes_preflight(tmp_path: Path) -> None:
    from edgekd.api import load_pipeline, load_targets
    from edgekd.stages.preflight import preflight

    config, base = load_pipeline("cifar100-resnet32x4-resnet8x4", [f"data.path={tmp_path}"])
    assert [(s.name, s.weight) for s in config.stages.distill.losses] == [("crd", 0.8)]
    preflight(config, load_targets(config.stages.profile.targets, base), base)


def test_search_budget_is_found_when_the_target_is_given_as_a_path() -> None:
    from edgekd.api import load_pipeline, load_targets
    from edgekd.resources import resolve
    from edgekd.stages.preflight import preflight
    from edgekd.stages.search import budget_ms

    path = str(resolve("targets", "local-cpu"))  # what `--target targets/local-cpu.yaml` passes
    config, base = load_pipeline("quickstart-search", ["stages.search.budget_from=null"], targets=[path])
    assert config.stages.profile.targets == [path]
    targets = load_targets(config.stages.profile.targets, base)
    preflight(config, targets, base)  # raised "no latency budget … max_latency_p50_ms.<path>"
    assert budget_ms(config, targets[0].name) == config.budgets.max_latency_p50_ms["local-cpu"]
