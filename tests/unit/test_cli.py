"""The command line: every bad input is exit code 2 with one `error:` line and no traceback, and
leaves the run folder alone; the fast commands work. Nothing here trains a model."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import yaml
from typer.testing import CliRunner, Result

from edgekd.cli.app import app
from edgekd.config import ModelSpec

runner = CliRunner()

# Epochs 0 and the tiniest model: were a check to let a bad pipeline through, it would still not train long.
PIPELINE: dict[str, Any] = {
    "name": "cli-test",
    "data": {"kind": "digits"},
    "stages": {
        "teacher": {"model": {"name": "test_tiny"}, "train": {"epochs": 0}},
        "distill": {"student": {"name": "test_tiny"}, "train": {"epochs": 0}},
        "profile": {"targets": ["local-cpu"], "batch_sizes": [1], "min_time_s": 0.01, "min_runs": 2,
                    "warmup_runs": 1, "layer_profile_runs": 0},
    },
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every command in a scratch folder, so a default runs/<name> never lands in the repo."""
    monkeypatch.chdir(tmp_path)


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def write_pipeline(folder: Path, data: dict[str, Any] | None = None, **changes: Any) -> Path:
    data = json.loads(json.dumps(data or PIPELINE))
    data.update(changes)
    path = folder / "pipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def assert_bad_input(result: Result, *fragments: str) -> str:
    """Exit 2, exactly one stderr line starting with "error:", nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"an exception escaped: {result.exception!r}"
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {result.stderr!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    return write_pipeline(tmp_path)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Where `compress --out` points; a bad input must not create it."""
    return tmp_path / "run"


def compress_bad(pipeline: Path | str, run_dir: Path, *extra: str) -> Result:
    result = invoke("compress", str(pipeline), "--out", str(run_dir), *extra)
    assert not run_dir.exists(), f"bad input created or touched {run_dir}: {list(run_dir.iterdir())}"
    assert not (Path.cwd() / "runs").exists()
    return result


# --- compress: bad input --------------------------------------------------------------------------


def test_missing_pipeline_file(tmp_path: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(tmp_path / "nope.yaml", run_dir), "nope.yaml", "file not found")


def test_malformed_yaml(tmp_path: Path, run_dir: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nstages:\n  teacher: {model: [oops\n")
    assert_bad_input(compress_bad(path, run_dir), "broken.yaml", "line ", "YAML")


def test_binary_file_as_pipeline(tmp_path: Path, run_dir: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(os.urandom(64) + b"\xff\xfe")
    assert_bad_input(compress_bad(path, run_dir), "model.yaml")


def test_unknown_key(tmp_path: Path, run_dir: Path) -> None:
    data = json.loads(json.dumps(PIPELINE))
    data["stages"]["distill"]["train"] = {"epoch": 0}
    line = assert_bad_input(compress_bad(write_pipeline(tmp_path, data), run_dir))
    assert "pipe.yaml" in line and "stages.distill.train.epoch: unknown key" in line
    assert "did you mean 'epochs'" in line


def test_a_typo_in_set_is_blamed_on_set_not_on_the_file(pipeline: Path, run_dir: Path) -> None:
    line = assert_bad_input(compress_bad(pipeline, run_dir, "--set", "stages.distill.train.epoch=3"))
    assert line.startswith("error: --set: stages.distill.train.epoch: unknown key") and "pipe.yaml" not in line


def test_misspelt_stage(tmp_path: Path, run_dir: Path) -> None:
    data = json.loads(json.dumps(PIPELINE))
    data["stages"]["distil"] = data["stages"].pop("distill")
    assert_bad_input(compress_bad(write_pipeline(tmp_path, data), run_dir),
                     "stages.distil: unknown key", "did you mean 'distill'")


def test_wrong_type(pipeline: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", "seed=abc"), "--set: seed:", "'abc'")


def test_teacher_with_two_sources(pipeline: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", "stages.teacher.torchscript=t.ts"),
                     "stages.teacher:", "exactly one of")


def test_unknown_builtin_pipeline_lists_close_match(run_dir: Path) -> None:
    assert_bad_input(compress_bad("quickstrt", run_dir), "'quickstrt'", "did you mean 'quickstart'")


@pytest.mark.parametrize("item, fragment", [
    ("foo", "expected KEY.PATH=VALUE"),
    ("=1", "expected KEY.PATH=VALUE"),
    ("name.x=1", "name is a value, not a mapping"),
    ("stages.profile.targets.3=x", "not an index"),
])
def test_bad_set(pipeline: Path, run_dir: Path, item: str, fragment: str) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", item), f"--set {item!r}", fragment)


def test_unknown_student_model_lists_close_match(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "stages.distill.student.name=resnet_cifr")
    assert_bad_input(result, "stages.distill.student", "'resnet_cifr'", "did you mean 'resnet_cifar'")


def test_bad_model_parameter(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "stages.distill.student={name: resnet_cifar, params: {dept: 8}}")
    assert_bad_input(result, "stages.distill.student", "dept")


def test_unknown_loss(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "stages.distill.losses=[{name: hintn}]")
    assert_bad_input(result, "stages.distill.losses.0", "'hintn'", "did you mean 'hinton'")


def test_qkd_losses_are_checked_before_any_stage(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "stages.qkd.losses=[{name: hintn}]")
    assert_bad_input(result, "stages.qkd.losses.0", "did you mean 'hinton'")
    result = compress_bad(pipeline, run_dir, "--set", "stages.qkd.losses=[]")
    assert_bad_input(result, "stages.qkd.losses", "co-studying needs a distillation loss", "co_studying.epochs: 0")
    result = compress_bad(pipeline, run_dir, "--set", "stages.qkd.losses=[{name: at}]")
    assert_bad_input(result, "stages.qkd.losses", "co-studying exchanges logits only", "co_studying.epochs: 0")


def test_bad_loss_parameter(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "stages.distill.losses=[{name: hinton, params: {temp: 3}}]")
    assert_bad_input(result, "stages.distill.losses.0", "'temp'", "temperature")


def test_unknown_target(pipeline: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--target", "local-cp"), "'local-cp'", "did you mean 'local-cpu'")


def test_unknown_target_in_pipeline(pipeline: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", "stages.profile.targets=[jetson-nanoo]"),
                     "'jetson-nanoo'", "local-cpu")


def test_budget_on_a_target_that_is_not_profiled(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "budgets.max_latency_p50_ms={jetson: 5}")
    assert_bad_input(result, "budgets.max_latency_p50_ms", "'jetson'", "not profiled")


def test_missing_teacher_file(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "stages.teacher={torchscript: missing.ts}")
    assert_bad_input(result, "stages.teacher.torchscript", "missing.ts")


def test_data_path_missing_for_image_folder(pipeline: Path, run_dir: Path) -> None:
    result = invoke("compress", str(pipeline), "--out", str(run_dir),
                    "--set", "data={kind: image_folder, path: no/such/folder}")
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0]
    assert "data.path" in errors[0] and "no/such/folder" in errors[0]


def test_data_path_missing_for_image_folder_fails_before_any_stage(pipeline: Path, run_dir: Path) -> None:
    result = compress_bad(pipeline, run_dir, "--set", "data={kind: image_folder, path: no/such/folder}")
    assert_bad_input(result, "data.path")


def test_data_path_not_given_for_image_folder(pipeline: Path, run_dir: Path) -> None:
    result = invoke("compress", str(pipeline), "--out", str(run_dir), "--set", "data.kind=image_folder")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "data.path" in result.stderr.splitlines()[-1]


def test_unknown_data_kind(pipeline: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", "data.kind=digit"), "data.kind", "did you mean 'digits'")


def test_out_folder_with_unrelated_files_is_refused_and_kept(pipeline: Path, tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = tree(folder)
    for extra in ([], ["--fresh"]):
        result = invoke("compress", str(pipeline), "--out", str(folder), *extra)
        assert_bad_input(result, str(folder), "not an edgekd run", "--out")
        after = tree(folder)
        assert {k: v for k, v in after.items() if k != ".lock"} == before


def test_out_folder_with_unrelated_files_is_left_exactly_as_it_was(pipeline: Path, tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    invoke("compress", str(pipeline), "--out", str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]


def test_out_is_a_file(pipeline: Path, tmp_path: Path) -> None:
    file = tmp_path / "run.txt"
    file.write_text("keep")
    assert_bad_input(invoke("compress", str(pipeline), "--out", str(file)), "run.txt")
    assert file.read_text() == "keep"


def test_brackets_in_messages_are_printed_not_taken_as_markup(pipeline: Path, run_dir: Path) -> None:
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", "name=a[/]b"), "'a[/]b'")
    assert_bad_input(compress_bad(pipeline, run_dir, "--set", "stages.distill.student.name=x[red]y"), "'x[red]y'")


# --- --debug --------------------------------------------------------------------------------------


def test_debug_adds_the_traceback_but_keeps_exit_code_2(tmp_path: Path) -> None:
    result = invoke("--debug", "compress", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ") and "nope.yaml" in result.stderr.splitlines()[-1]
    # and the next command without --debug is the one-line error alone
    assert_bad_input(invoke("compress", str(tmp_path / "nope.yaml")), "nope.yaml")


def test_piped_tables_are_not_cut_at_80_columns() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    listed = subprocess.run([sys.executable, "-m", "edgekd", "targets", "list"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "jetson-agx-orin" in line]
    assert len(rows) == 1 and "Jetson AGX Orin 64GB over SSH, TensorRT via trtexec" in rows[0]  # a CI log reads it whole


def test_real_process_exit_codes_and_traceback_only_with_debug(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    plain = subprocess.run([sys.executable, "-m", "edgekd", "compress", missing],
                           capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 2, plain.stderr
    assert plain.stderr.splitlines() == [f"error: {missing}: file not found"]
    assert plain.stdout == ""

    debug = subprocess.run([sys.executable, "-m", "edgekd", "--debug", "compress", missing],
                           capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode == 2, debug.stderr  # bad input stays bad input: CI gates on the code
    assert "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    assert debug.stderr.splitlines()[-1] == f"error: {missing}: file not found"
    assert "hit a bug" not in debug.stderr


# --- profile, export, report: bad input -----------------------------------------------------------


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    from edgekd.export import export_onnx
    from edgekd.models import build_model

    path = tmp_path / "tiny.onnx"
    export_onnx(build_model(ModelSpec(name="test_tiny"), 10, 1), (1, 8, 8), path)
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    from edgekd.models import build_model, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec(name="test_tiny")
    path = tmp_path / "ckpt" / "student.pt"
    save_checkpoint(path, build_model(spec, 10, 1), spec, 10, (1, 8, 8))
    return path


def test_profile_missing_file(tmp_path: Path) -> None:
    assert_bad_input(invoke("profile", str(tmp_path / "nope.onnx"), "--min-time", "0"), "nope.onnx")


def test_profile_corrupt_onnx(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    assert_bad_input(invoke("profile", str(path), "--min-time", "0"), "corrupt.onnx", "not a valid ONNX model")


def test_profile_unknown_target(tiny_onnx: Path) -> None:
    assert_bad_input(invoke("profile", str(tiny_onnx), "--target", "local-cpuu"), "did you mean 'local-cpu'")


@pytest.mark.parametrize("args, fragment", [(["--min-time", "-1"], "--min-time"), (["--batch", "0"], "batch")])
def test_profile_bad_numbers(tiny_onnx: Path, args: list[str], fragment: str) -> None:
    result = invoke("profile", str(tiny_onnx), "--min-time", "0.01", *args)
    assert_bad_input(result, fragment)


def test_export_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    state_dict = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, state_dict)
    assert_bad_input(invoke("export", str(state_dict), "--out", str(tmp_path / "x.onnx")),
                     "weights.pt", "not an edgekd checkpoint")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(1).bytes(300))
    assert_bad_input(invoke("export", str(junk), "--out", str(tmp_path / "y.onnx")), "junk.pt")
    assert_bad_input(invoke("export", str(tmp_path / "missing.pt")), "missing.pt")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


def test_export_unknown_format(checkpoint: Path) -> None:
    assert_bad_input(invoke("export", str(checkpoint), "--format", "tflite"), "'tflite'", "onnx or tensorrt")


def test_export_of_an_onnx_file_says_to_pass_a_checkpoint(tiny_onnx: Path) -> None:
    assert_bad_input(invoke("export", str(tiny_onnx)), "already an ONNX file", "distill/student.pt")


def test_export_tensorrt_to_an_onnx_path_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "engine.onnx"
    assert_bad_input(invoke("export", str(checkpoint), "--format", "tensorrt", "--out", str(out)), ".engine")
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_export_tensorrt_without_tensorrt_says_how_to_install(checkpoint: Path) -> None:
    before = sorted(p.name for p in checkpoint.parent.iterdir())
    line = assert_bad_input(invoke("export", str(checkpoint), "--format", "tensorrt"))
    assert "pip install 'edgekd[tensorrt]'" in line
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == before  # no half-done ONNX left behind


def test_report_on_a_folder_without_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    (folder / "notes.txt").write_text("hi")
    assert_bad_input(invoke("report", str(folder)), "not-a-run", "manifest.json")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_report_on_an_unfinished_run_says_to_finish_it(tmp_path: Path) -> None:
    from edgekd.pipeline.manifest import FORMAT, Manifest

    folder = tmp_path / "killed-run"
    folder.mkdir()
    Manifest(folder, {"format": FORMAT, "stages": {}, "artifacts": {}}).save()  # as a run killed in its first stage
    assert_bad_input(invoke("report", str(folder)), "killed-run", "did not finish", "edgekd compress")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]


def test_targets_show_unknown_and_malformed(tmp_path: Path) -> None:
    assert_bad_input(invoke("targets", "show", "local-cp"), "did you mean 'local-cpu'")
    bad = tmp_path / "board.yaml"
    bad.write_text("name: board\nruntime: tflite\n")
    assert_bad_input(invoke("targets", "show", str(bad)), "board.yaml", "runtime")
    assert_bad_input(invoke("targets", "check", str(bad)), "board.yaml", "runtime")


# --- happy paths ----------------------------------------------------------------------------------


def test_version() -> None:
    from edgekd import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"edgekd {__version__}"


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("compress", "profile", "export", "targets", "methods", "report"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "compress" in result.output


def test_methods_lists_hinton_with_its_paper() -> None:
    result = invoke("methods")
    assert result.exit_code == 0
    assert "hinton" in result.stdout
    assert "Distilling the Knowledge" in result.stdout


def test_targets_list() -> None:
    result = invoke("targets", "list")
    assert result.exit_code == 0
    assert "local-cpu" in result.stdout and "onnxruntime" in result.stdout


def test_targets_show_prints_json() -> None:
    result = invoke("targets", "show", "local-cpu")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == "local-cpu"
    assert shown["runtime"] == "onnxruntime"
    assert shown["connection"]["kind"] == "local"


def test_targets_check_local_cpu() -> None:
    result = invoke("targets", "check", "local-cpu")
    assert result.exit_code == 0, result.output
    assert "local-cpu" in result.stdout and "ready" in result.stdout


def test_profile_times_several_models_side_by_side(tiny_onnx: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "tiny.onnx"  # the same stem: told apart by its folder
    other.parent.mkdir()
    shutil.copyfile(tiny_onnx, other)
    out = tmp_path / "out.json"
    result = invoke("profile", str(tiny_onnx), str(other), "--min-time", "0.01", "--batch", "1", "--json", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert [r["model"] for r in json.loads(out.read_text())] == [f"{tiny_onnx.parent.name}/tiny", "other/tiny"]


def test_profile_tiny_model_writes_table_and_json(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = invoke("profile", str(tiny_onnx), "--target", "local-cpu", "--min-time", "0.01",
                    "--batch", "1", "--batch", "2", "--json", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "local-cpu" in result.stdout and "tiny" in result.stdout and "|" in result.stdout
    records = json.loads(out.read_text())
    assert [r["batch"] for r in records] == [1, 2]
    for record in records:
        assert record["model"] == "tiny" and record["target"] == "local-cpu"
        assert record["runtime"] == "onnxruntime" and record["precision"] == "fp32"
        assert 0 < record["p50_ms"] <= record["p99_ms"]
        assert record["estimated"] is False


def test_export_checkpoint_to_onnx(checkpoint: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgekd.models import load_checkpoint

    out = tmp_path / "exported" / "x.onnx"
    result = invoke("export", str(checkpoint), "--format", "onnx", "--out", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert str(out) in result.stdout
    model = onnx.load(str(out))
    onnx.checker.check_model(model)

    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)  # dynamic batch
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = load_checkpoint(checkpoint).module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
